#!/usr/bin/env python3
"""Converts the tiny Hugging Face checkpoints of make_model_fixtures.py to GGUF, one models/<name>/model.gguf
each, laid out as llama.cpp's convert_hf_to_gguf.py --outtype f32 lays out that architecture (ggml-org/llama.cpp,
conversion/base.py TextModel, conversion/llama.py LlamaModel, conversion/qwen.py Qwen2Model/Qwen3Model,
conversion/phi.py Phi3MiniModel, conversion/gemma.py GemmaModel/Gemma2Model/Gemma3Model, conversion/olmo.py
Olmo2Model, conversion/gpt_neox.py GPTNeoXModel). The loader tests compare the GGUF model's logits with the same
reference.json.

Run with the reference venv (gguf, torch, transformers, safetensors), after make_model_fixtures.py:
    .venv-ref/bin/python Tests/ModelTests/Fixtures/make_family_gguf.py [NAME ...]
Deterministic (no timestamps, no randomness): re-running writes the same bytes. Every tensor is F32.

Families (HF class -> general.architecture):
    llama, llama3, mistral_swa   LlamaForCausalLM / MistralForCausalLM -> "llama"
    qwen2, qwen2_tied, qwen2_swa Qwen2ForCausalLM -> "qwen2"
    qwen3, qwen3_tied            Qwen3ForCausalLM -> "qwen3"
    phi3, phi3_longrope          Phi3ForCausalLM  -> "phi3"
    gemma                        GemmaForCausalLM  -> "gemma"
    gemma2                       Gemma2ForCausalLM -> "gemma2"
    gemma3                       Gemma3ForCausalLM -> "gemma3"
    olmo2                        Olmo2ForCausalLM  -> "olmo2"
    gptneox, gptneox_seq         GPTNeoXForCausalLM -> "gptneox"

Metadata written for every file (what the converter writes, tokenizer aside):
    general.architecture, general.type "model", general.name (directory name), general.size_label,
    general.file_type 0 (ALL_F32), general.quantization_version 2
    <arch>.block_count, .context_length (max_position_embeddings), .embedding_length,
    .feed_forward_length, .attention.head_count, .attention.head_count_kv,
    .attention.layer_norm_rms_epsilon, .rope.freq_base
    llama:  + .vocab_size, .rope.dimension_count (head_dim), .attention.key_length/.value_length (head_dim:
              transformers 5 configs of Llama and Mistral always carry head_dim)
    qwen2:  nothing more (Qwen2Config has no head_dim)
    qwen3:  + .attention.key_length/.value_length (head_dim)
    phi3:   its own set (Phi3MiniModel does not call the generic one): + .rope.dimension_count
              (int(partial_rotary_factor * hidden) // heads), .rope.scaling.original_context_length,
              .attention.sliding_window (0 when the config has none); LongRoPE adds
              .rope.scaling.attn_factor (sqrt(1 + ln(max_pos / orig) / ln(orig))) and the F32 tensors
              rope_factors_long.weight / rope_factors_short.weight (head_dim * partial / 2 values each)
    gemma:  its own list: context_length, embedding_length, block_count, feed_forward_length, head_count,
              head_count_kv, layer_norm_rms_epsilon, key_length/value_length (head_dim); no rope.freq_base
              (llama.cpp's default 10000, the value used here)
    gemma2: the same + .attn_logit_softcapping, .final_logit_softcapping, .attention.sliding_window
    gemma3: the generic keys + .rope.freq_base (full_attention's theta) and .rope.freq_base_swa (sliding), then
              .attention.sliding_window (.final_logit_softcapping only when the config sets one)
    olmo2:  the generic keys (no head_dim: Olmo2Config has none; no sliding window: OLMo 2 has none)
    gptneox: its own list, without general.file_type: context_length, embedding_length, block_count,
              feed_forward_length, .rope.dimension_count (int(rotary_pct * head_size) = 4), .attention.head_count,
              .use_parallel_residual, .attention.layer_norm_epsilon; no head_count_kv (= head_count), no
              rope.freq_base (llama.cpp's default 10000 = Pythia's). The converter reads hparams["rotary_pct"], which
              a transformers 5 config keeps only as rope_parameters["partial_rotary_factor"] (KeyError); we use it.
    Tokenizer (the converter writes the real vocabulary; these checkpoints have none, and transformers' GGUF
    loader takes vocab_size from the token list where <arch>.vocab_size is absent): tokenizer.ggml.model
    "gpt2", tokenizer.ggml.pre "default", tokens "<pad>", "<s>", "</s>", "t3" .. "t511" (types 3 for the
    first three, 1 after), bos/eos/padding ids from config.json. No merges.

What the converter drops (so the GGUF cannot tell a loader): Gemma 2/3's query_pre_attn_scalar and layer
pattern (llama.cpp derives them: scale 1/sqrt(head_dim), or 1/sqrt(hidden/heads) for the 27B models only; Gemma 2
slides on every other layer, Gemma 3 on 5 of every 6), so the tiny gemma2/gemma3 (scalar 24 != head_dim 16;
gemma3's pattern 3) need config.json beside the GGUF; the sliding window of Mistral and Qwen2
(neither LlamaModel nor Qwen2Model writes one; llama.cpp runs them with full attention), Qwen2's
layer_types, Phi-3's partial_rotary_factor other than through rope.dimension_count, and the rope type
(Phi3MiniModel writes no rope.scaling.type; LongRoPE is known from the presence of the factor tensors).

Tensors: HF names mapped with gguf-py's TensorNameMap (token_embd, blk.N.attn_norm, attn_q/attn_k/attn_v
(+ .bias), attn_output, attn_q_norm/attn_k_norm (qwen3), attn_qkv (phi3 qkv_proj: q rows, then k, then v),
ffn_norm, ffn_gate, ffn_up (phi3 gate_up_proj, unsplit: the first intermediate_size rows are the gate),
ffn_down, output_norm, output; tied models have no output.weight, as the checkpoint has no lm_head).
GGUF dims are the numpy shape reversed (ne0 = HF in_features), as GGUFWriter stores them.
Gemma 2/3 post-norms: post_attention_layernorm -> blk.N.post_attention_norm, pre_feedforward_layernorm ->
blk.N.ffn_norm, post_feedforward_layernorm -> blk.N.post_ffw_norm (Gemma 1's post_attention_layernorm is its
pre-MLP norm: blk.N.ffn_norm); OLMo 2: post_attention_layernorm -> blk.N.post_attention_norm,
post_feedforward_layernorm -> blk.N.post_ffw_norm, q_norm/k_norm -> attn_q_norm/attn_k_norm (full projection
width, 32 and 16). GPT-NeoX: embed_in -> token_embd, embed_out -> output, final_layer_norm -> output_norm (+ .bias),
input_layernorm -> attn_norm, post_attention_layernorm -> ffn_norm, query_key_value -> attn_qkv, dense ->
attn_output, dense_h_to_4h -> ffn_up, dense_4h_to_h -> ffn_down (all with biases).
gemma/gemma2/gemma3: every tensor whose name ends in norm.weight (Gemma 3's q/k norms too) is stored as 1 + w
(the converter's data_torch + 1), i.e. the f32 gain transformers computes; transformers' GGUF loader subtracts 1
again, and 1 + ((1 + w) - 1) is exact, so both read the same logits. The converter's tied lm_head is skipped
(the checkpoints have none). Gemma3Model also cuts token_embd to the tokenizer's size; these checkpoints have no
tokenizer (the converter would stop there), so all 512 rows are kept.
gptneox: attn_qkv rows are regrouped from HF's per-head [q_h; k_h; v_h] to [q (all heads); k; v] (weights and
biases; GPTNeoXModel.modify_tensors), the layout llama.cpp's graph slices. No other family is permuted: gemma,
gemma2, gemma3, olmo2 and gptneox use NEOX (rotate-half) rope in llama.cpp and keep HF's q/k order.
"llama" only: q and k rows (weights and biases) are permuted from HF's rotate-half order to GGML's
interleaved pairs (LlamaModel.permute, k with the KV head count); qwen2/qwen3/phi3 use NEOX rope and keep HF
order. llama3 only: rope_freqs.weight (head_dim / 2 F32 values), the Llama-3 frequency divisors
(LlamaModel.generate_extra_tensors). The converter reads original_max_position_embeddings from the top level
of config.json with a default of 8192; transformers 5 keeps it in rope_parameters (64 here), so the converter
run on this checkpoint would use 8192 and write factors that do not match the model. We use 64, the value the
model was trained with (verified below against transformers' llama3 inv_freq). Likewise Phi3MiniModel reads
rope_parameters["original_max_position_embeddings"], which transformers 5 stores only for LongRoPE (the
converter would stop with a KeyError on `phi3`); we write config.json's top-level value, the one transformers
uses.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import gguf
from safetensors import safe_open


# record_versions: Tests/fixture_versions.py, shared by the fixture scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
from fixture_versions import record_versions  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models")

FAMILIES = {
    "llama": gguf.MODEL_ARCH.LLAMA, "llama3": gguf.MODEL_ARCH.LLAMA, "mistral_swa": gguf.MODEL_ARCH.LLAMA,
    "qwen2": gguf.MODEL_ARCH.QWEN2, "qwen2_tied": gguf.MODEL_ARCH.QWEN2, "qwen2_swa": gguf.MODEL_ARCH.QWEN2,
    "qwen3": gguf.MODEL_ARCH.QWEN3, "qwen3_tied": gguf.MODEL_ARCH.QWEN3,
    "phi3": gguf.MODEL_ARCH.PHI3, "phi3_longrope": gguf.MODEL_ARCH.PHI3,
    "gemma": gguf.MODEL_ARCH.GEMMA, "gemma2": gguf.MODEL_ARCH.GEMMA2, "gemma3": gguf.MODEL_ARCH.GEMMA3,
    "olmo2": gguf.MODEL_ARCH.OLMO2, "gptneox": gguf.MODEL_ARCH.GPTNEOX, "gptneox_seq": gguf.MODEL_ARCH.GPTNEOX,
}
GEMMAS = (gguf.MODEL_ARCH.GEMMA, gguf.MODEL_ARCH.GEMMA2, gguf.MODEL_ARCH.GEMMA3)


def load_hparams(d):
    """What the converter's ModelBase.load_hparams reads: AutoConfig(...).to_dict()."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(d).to_dict()


def llama_permute(w, n_head, n_head_kv):
    """LlamaModel.permute: HF rotate-half rows -> GGML interleaved (x0, x_half) pairs, per head."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(h):
    """LlamaModel.generate_extra_tensors for rope_type llama3 (original context: see the docstring)."""
    rp = h["rope_parameters"]
    base = rp.get("rope_theta", 10000.0)
    dim = h.get("head_dim") or h["hidden_size"] // h["num_attention_heads"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, low, high = rp.get("factor", 8.0), rp.get("low_freq_factor", 1.0), rp.get("high_freq_factor", 4.0)
    old_context_len = rp["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_context_len / low, old_context_len / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_context_len / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def add_generic(w, h, n_layers):
    """TextModel.set_gguf_parameters, the branches these configs reach."""
    w.add_block_count(n_layers)
    w.add_context_length(h["max_position_embeddings"])
    w.add_embedding_length(h["hidden_size"])
    w.add_feed_forward_length(h["intermediate_size"])
    w.add_head_count(h["num_attention_heads"])
    w.add_head_count_kv(h["num_key_value_heads"])
    # rope_type "default" writes no scaling keys; "llama3" is handled by the rope_freqs tensor.
    w.add_rope_freq_base(h["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(h["rms_norm_eps"])
    if h.get("head_dim") is not None:
        w.add_key_length(h["head_dim"])
        w.add_value_length(h["head_dim"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)


def add_phi3(w, h, n_layers):
    """Phi3MiniModel.set_gguf_parameters + generate_extra_tensors' metadata; returns the extra tensors."""
    rp = h["rope_parameters"]
    n_embd, n_head = h["hidden_size"], h["num_attention_heads"]
    # The converter reads rope_parameters["original_max_position_embeddings"]; transformers puts it there only
    # for LongRoPE, and Phi3Config's top-level value is the one transformers uses, so take that.
    orig = h["original_max_position_embeddings"]
    rope_dims = int(rp.get("partial_rotary_factor", 1.0) * n_embd) // n_head
    w.add_context_length(h["max_position_embeddings"])
    w.add_rope_scaling_orig_ctx_len(orig)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(h["intermediate_size"])
    w.add_block_count(n_layers)
    w.add_head_count(n_head)
    w.add_head_count_kv(h["num_key_value_heads"])
    w.add_layer_norm_rms_eps(h["rms_norm_eps"])
    w.add_rope_dimension_count(rope_dims)
    w.add_rope_freq_base(rp["rope_theta"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_sliding_window(h.get("sliding_window") or 0)  # 0 = none (how llama.cpp tells Phi-4 from Phi-3)
    long_f, short_f = rp.get("long_factor"), rp.get("short_factor")
    if not long_f:
        return []
    assert rp["rope_type"] == "longrope" and len(long_f) == len(short_f) == rope_dims // 2
    scale = h["max_position_embeddings"] / orig
    w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0)
    return [("rope_factors_long.weight", np.array(long_f, dtype=np.float32)),
            ("rope_factors_short.weight", np.array(short_f, dtype=np.float32))]


def add_gemma(w, h, n_layers, arch):
    """GemmaModel / Gemma2Model.set_gguf_parameters (their own lists: no rope.freq_base, llama.cpp's default 10000
    is what these configs use) and Gemma3Model's (TextModel's generic keys, then its own)."""
    if arch == gguf.MODEL_ARCH.GEMMA3:
        w.add_block_count(n_layers)
        w.add_context_length(h["max_position_embeddings"])
        w.add_embedding_length(h["hidden_size"])
        w.add_feed_forward_length(h["intermediate_size"])
        w.add_head_count(h["num_attention_heads"])
        w.add_head_count_kv(h["num_key_value_heads"])
        rp = h["rope_parameters"]
        w.add_rope_freq_base(rp["full_attention"]["rope_theta"])  # global layers
        w.add_rope_freq_base_swa(rp["sliding_attention"]["rope_theta"])  # local layers
        w.add_layer_norm_rms_eps(h["rms_norm_eps"])
        w.add_key_length(h["head_dim"])
        w.add_value_length(h["head_dim"])
        w.add_file_type(gguf.LlamaFileType.ALL_F32)
        # Gemma3Model then rewrites context_length, head_count, rms eps, key/value_length, freq_base and
        # head_count_kv with the same values (the writer keeps the first position), adds final_logit_softcapping
        # only when set (not here) and sliding_window (no sliding_window_pattern in a transformers 5 config).
        assert h.get("attn_logit_softcapping") is None and not h.get("final_logit_softcapping")
        w.add_sliding_window(h["sliding_window"])
        return
    w.add_context_length(h["max_position_embeddings"])
    w.add_embedding_length(h["hidden_size"])
    w.add_block_count(n_layers)
    w.add_feed_forward_length(h["intermediate_size"])
    w.add_head_count(h["num_attention_heads"])
    w.add_head_count_kv(h["num_key_value_heads"])
    w.add_layer_norm_rms_eps(h["rms_norm_eps"])
    w.add_key_length(h["head_dim"])
    w.add_value_length(h["head_dim"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if arch == gguf.MODEL_ARCH.GEMMA2:
        w.add_attn_logit_softcapping(h["attn_logit_softcapping"])
        w.add_final_logit_softcapping(h["final_logit_softcapping"])
        w.add_sliding_window(h["sliding_window"])


def add_gptneox(w, h, n_layers):
    """GPTNeoXModel.set_gguf_parameters: its own list (no file_type, no rope.freq_base, no head_count_kv). It reads
    hparams["rotary_pct"], which a transformers 5 config keeps only as rope_parameters["partial_rotary_factor"]
    (the converter would stop with a KeyError): that is the value transformers uses."""
    pct = h["rope_parameters"]["partial_rotary_factor"]
    assert h["rope_parameters"]["rope_theta"] == 10000.0  # llama.cpp's default base: no key says otherwise
    w.add_context_length(h["max_position_embeddings"])
    w.add_embedding_length(h["hidden_size"])
    w.add_block_count(n_layers)
    w.add_feed_forward_length(h["intermediate_size"])
    w.add_rope_dimension_count(int(pct * (h["hidden_size"] // h["num_attention_heads"])))
    w.add_head_count(h["num_attention_heads"])
    w.add_parallel_residual(h["use_parallel_residual"])
    w.add_layer_norm_eps(h["layer_norm_eps"])


def neox_qkv_to_gguf(a, n_head):
    """GPTNeoXModel.modify_tensors: HF's fused rows per head [q_h; k_h; v_h] -> [q (all heads); k; v]."""
    rest = a.shape[1:]
    per = a.reshape(n_head, 3, a.shape[0] // (3 * n_head), *rest)
    return np.concatenate([per[:, 0].reshape(-1, *rest), per[:, 1].reshape(-1, *rest), per[:, 2].reshape(-1, *rest)])


def neox_qkv_from_gguf(a, n_head):
    rest = a.shape[1:]
    return a.reshape(3, n_head, a.shape[0] // (3 * n_head), *rest).swapaxes(0, 1).reshape(a.shape)


def to_gguf(arch, k, arr, h):
    """The converter's per-tensor change for `arch` (k: HF name)."""
    if arch == gguf.MODEL_ARCH.LLAMA:
        if k.endswith(("q_proj.weight", "q_proj.bias")):
            return llama_permute(arr, h["num_attention_heads"], h["num_attention_heads"])
        if k.endswith(("k_proj.weight", "k_proj.bias")):
            return llama_permute(arr, h["num_attention_heads"], h["num_key_value_heads"])
    if arch in GEMMAS and k.endswith("norm.weight"):
        return arr + np.float32(1)  # the (1 + w) gain itself, rounded once to f32, as transformers computes it
    if arch == gguf.MODEL_ARCH.GPTNEOX and ".attention.query_key_value." in k:
        return neox_qkv_to_gguf(arr, h["num_attention_heads"])
    return arr


def add_tokenizer(w, h):
    vocab = h["vocab_size"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(["<pad>", "<s>", "</s>"] + [f"t{i}" for i in range(3, vocab)])
    w.add_token_types([3, 3, 3] + [1] * (vocab - 3))
    w.add_bos_token_id(h["bos_token_id"])
    w.add_eos_token_id(h["eos_token_id"])
    w.add_pad_token_id(h["pad_token_id"])


def convert(name):
    d = os.path.join(MODELS, name)
    arch = FAMILIES[name]
    h = load_hparams(d)
    n_layers = h["num_hidden_layers"]
    tmap = gguf.get_tensor_name_map(arch, n_layers)
    path = os.path.join(d, "model.gguf")
    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])

    with safe_open(os.path.join(d, "model.safetensors"), "np") as f:
        hf = {k: f.get_tensor(k) for k in f.keys()}
    assert all(a.dtype == np.float32 for a in hf.values())

    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    total = sum(a.size for a in hf.values())
    w.add_size_label(gguf.size_label(total, 0, 0, 0))
    extra = []
    if arch == gguf.MODEL_ARCH.PHI3:
        extra = add_phi3(w, h, n_layers)
    elif arch in GEMMAS:
        add_gemma(w, h, n_layers, arch)
    elif arch == gguf.MODEL_ARCH.GPTNEOX:
        add_gptneox(w, h, n_layers)
    else:
        add_generic(w, h, n_layers)
    if arch == gguf.MODEL_ARCH.LLAMA:
        w.add_vocab_size(h["vocab_size"])
        w.add_rope_dimension_count(h.get("head_dim") or h["hidden_size"] // h["num_attention_heads"])
        if h["rope_parameters"].get("rope_type") == "llama3":
            extra = [("rope_freqs.weight", llama3_rope_factors(h))]
    add_tokenizer(w, h)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # generate_extra_tensors() first, then the checkpoint's tensors in file order, as prepare_tensors does.
    for gname, arr in extra:
        w.add_tensor(gname, arr)
    for k, arr in hf.items():
        arr = to_gguf(arch, k, arr, h)
        gname = tmap.get_name(k, try_suffixes=(".weight", ".bias"))
        assert gname is not None, f"{name}: no GGUF name for {k}"
        w.add_tensor(gname, np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# ---- checks ---------------------------------------------------------------------------------------------

def check_reader(name, path):
    """Read the file back with gguf-py: every tensor F32, shapes and values those of the checkpoint."""
    d = os.path.dirname(path)
    h = load_hparams(d)
    arch = FAMILIES[name]
    tmap = gguf.get_tensor_name_map(arch, h["num_hidden_layers"])
    r = gguf.GGUFReader(path)
    got = {t.name: t for t in r.tensors}
    with safe_open(os.path.join(d, "model.safetensors"), "np") as f:
        for k in f.keys():
            t = got.pop(tmap.get_name(k, try_suffixes=(".weight", ".bias")))
            assert t.tensor_type == gguf.GGMLQuantizationType.F32, (name, t.name)
            a = np.asarray(t.data).reshape(f.get_tensor(k).shape)
            want = f.get_tensor(k)
            if arch == gguf.MODEL_ARCH.LLAMA and (".attn_q." in t.name or ".attn_k." in t.name):
                heads = h["num_attention_heads"] if ".attn_q." in t.name else h["num_key_value_heads"]
                # Undo the permutation as transformers' LlamaTensorProcessor does.
                a = a.reshape(heads, a.shape[0] // heads // 2, 2, *a.shape[1:]).swapaxes(2, 1).reshape(a.shape)
            elif arch in GEMMAS and k.endswith("norm.weight"):
                # f32(1 + w) is not invertible to w bit for bit, but it is the gain transformers multiplies by:
                # 1 + ((1 + w) - 1) is exact (Sterbenz: 1 + w lies in [0.5, 2]), so the logits agree exactly.
                want = want + np.float32(1)
            elif arch == gguf.MODEL_ARCH.GPTNEOX and ".attn_qkv." in t.name:
                a = neox_qkv_from_gguf(a, h["num_attention_heads"])
            assert np.array_equal(a, want), (name, k)
            assert list(t.shape) == list(reversed(a.shape)), (name, k, t.shape)
    if name == "llama3":
        # rope_freqs divides the plain RoPE frequencies into transformers' llama3 ones.
        from transformers import AutoConfig
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        hf_inv, _ = ROPE_INIT_FUNCTIONS["llama3"](AutoConfig.from_pretrained(d))
        dim = h["head_dim"]
        base = 1.0 / (h["rope_parameters"]["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        ours = base / torch.from_numpy(np.asarray(got.pop("rope_freqs.weight").data))
        err = ((ours - hf_inv).abs() / hf_inv).max().item()
        assert err < 1e-6, f"llama3 rope_freqs: relative error {err}"  # f32 division rounding: a few ulps
    for extra in ("rope_factors_long.weight", "rope_factors_short.weight"):
        got.pop(extra, None)
    assert not got, f"{name}: unexpected tensors {sorted(got)}"
    return {f.name: f.contents() for f in r.fields.values()
            if not f.name.startswith(("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "GGUF."))}


def check_transformers(name, path):
    """Logits of transformers' GGUF loader vs reference.json: first with the config it derives from the GGUF,
    then with the checkpoint's config.json (tensors still from the GGUF). Returns the two max abs errors
    (None where it cannot load)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    d = os.path.dirname(path)
    ref = json.load(open(os.path.join(d, "reference.json")))
    out = []
    for use_hf_config in (False, True):
        try:
            hf_config = AutoConfig.from_pretrained(d)
            kw = {"config": hf_config} if use_hf_config else {}
            if use_hf_config and hf_config.model_type == "mistral":
                # transformers reads an "llama" GGUF only into Llama classes: move its (un-permuted) tensors
                # into the Mistral model of config.json; the parameter names are the same.
                llama = AutoModelForCausalLM.from_pretrained(d, gguf_file="model.gguf", dtype=torch.float32)
                hf_config._attn_implementation = "eager"
                m = AutoModelForCausalLM.from_config(hf_config).eval()
                m.load_state_dict(llama.state_dict(), strict=True)
            else:
                m = AutoModelForCausalLM.from_pretrained(d, gguf_file="model.gguf", dtype=torch.float32,
                                                         attn_implementation="eager", **kw).eval()
            err = 0.0
            with torch.no_grad():
                for u in ref["unpadded"]:
                    lg = m(input_ids=torch.tensor([u["input_ids"]])).logits[0]
                    err = max(err, (lg - torch.tensor(u["logits"])).abs().max().item())
            out.append(err)
        except Exception as e:  # report, do not hide: the caller prints it
            out.append(f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")
    return out


def check_inverse(name, path):
    """For every family, transformers' GGUF loader or not: the GGUF tensors mapped back to HF names and layouts by
    hand (gemma norms: stored - 1, exact as check_reader says; gptneox qkv re-interleaved per head), loaded into the
    model of config.json: max |logit error| against reference.json."""
    from transformers import AutoConfig, AutoModelForCausalLM

    d = os.path.dirname(path)
    h = load_hparams(d)
    arch = FAMILIES[name]
    tmap = gguf.get_tensor_name_map(arch, h["num_hidden_layers"])
    got = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(path).tensors}
    config = AutoConfig.from_pretrained(d)
    config._attn_implementation = "eager"
    m = AutoModelForCausalLM.from_config(config).eval()
    sd = {}
    for k, p in m.state_dict().items():
        gname = tmap.get_name(k, try_suffixes=(".weight", ".bias"))
        if gname not in got:  # the tied lm_head
            continue
        a = got[gname].reshape(p.shape)
        if arch in GEMMAS and k.endswith("norm.weight"):
            a = a - np.float32(1)
        elif arch == gguf.MODEL_ARCH.GPTNEOX and ".attention.query_key_value." in k:
            a = neox_qkv_from_gguf(a, h["num_attention_heads"])
        elif arch == gguf.MODEL_ARCH.LLAMA and (".attn_q." in gname or ".attn_k." in gname):
            heads = h["num_attention_heads"] if ".attn_q." in gname else h["num_key_value_heads"]
            a = a.reshape(heads, a.shape[0] // heads // 2, 2, *a.shape[1:]).swapaxes(2, 1).reshape(a.shape)
        sd[k] = torch.from_numpy(np.array(a))  # a copy: the reader maps the file read-only
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and all(k == "lm_head.weight" for k in missing), (name, missing, unexpected)
    m.tie_weights()
    ref = json.load(open(os.path.join(d, "reference.json")))
    err = 0.0
    with torch.no_grad():
        for u in ref["unpadded"]:
            lg = m(input_ids=torch.tensor([u["input_ids"]])).logits[0]
            err = max(err, (lg - torch.tensor(u["logits"])).abs().max().item())
    return err


# Architectures transformers' GGUF loader does not read at all (transformers 5.25: no gemma, olmo2 or gptneox entry
# in its GGUF config mapping); for them check_inverse is the check.
NOT_IN_TRANSFORMERS = {gguf.MODEL_ARCH.GEMMA, gguf.MODEL_ARCH.OLMO2, gguf.MODEL_ARCH.GPTNEOX}
# Families whose GGUF metadata is all transformers needs. It misreads the rest by design of the format or
# its loader: llama3 (it ignores rope_freqs), mistral_swa / qwen2_swa (no window in the GGUF), qwen3 /
# qwen3_tied (it ignores key_length and builds head_dim 128), phi3_longrope (no partial rotary or LongRoPE),
# gemma2 (it maps neither soft-cap nor query_pre_attn_scalar: defaults 50/30 and 256; measured error 1.95),
# gemma3 (query_pre_attn_scalar 256 and its default pattern of 6, all 4 layers sliding; measured 2.16).
COMPLETE_FOR_TRANSFORMERS = {"llama", "qwen2", "qwen2_tied", "phi3"}
# The GGUF holds the checkpoint's f32 values bit for bit (check_reader) and transformers runs the same eager
# CPU ops in this process, so the logits agree exactly (0.0 measured); the bound leaves room for nothing else.
LOGIT_TOL = 1e-5


def main():
    names = sys.argv[1:] or list(FAMILIES)
    torch.set_num_threads(2)
    for name in names:
        path = convert(name)
        meta = check_reader(name, path)
        gguf_cfg, hf_cfg = check_transformers(name, path)
        inverse = check_inverse(name, path)
        print(f"{name}: {os.path.getsize(path)} bytes; transformers max|logit error| "
              f"GGUF config: {gguf_cfg}; config.json: {hf_cfg}; tensors mapped back by hand: {inverse}",
              file=sys.stderr)
        assert inverse <= LOGIT_TOL, f"{name}: GGUF tensors mapped back give other logits"
        if FAMILIES[name] not in NOT_IN_TRANSFORMERS:
            assert isinstance(hf_cfg, float) and hf_cfg <= LOGIT_TOL, f"{name}: GGUF tensors give other logits"
        if name in COMPLETE_FOR_TRANSFORMERS:
            assert isinstance(gguf_cfg, float) and gguf_cfg <= LOGIT_TOL, f"{name}: GGUF metadata misread"
        if os.environ.get("SHOW_META"):
            print(json.dumps(meta, default=str), file=sys.stderr)


if __name__ == "__main__":
    main()
    record_versions(__file__)
