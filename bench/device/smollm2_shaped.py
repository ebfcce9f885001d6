#!/usr/bin/env python3
"""Writes a Hugging Face checkpoint with SmolLM2-135M's exact shapes and seeded random bf16 weights
(std 0.02, norms 1), for the device run (bench/device/run.sh): the real GGUF (98 MB) does not fit the
64 MiB that travels to the GPU machine, and timings and GPU-vs-CPU parity do not depend on the
values. Needs only numpy.   python3 bench/device/smollm2_shaped.py OUT_DIR"""
import json
import os
import struct
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
fixture = os.path.join(here, "../../Tests/ModelTests/Fixtures/gguf/smollm2.json")
config = json.load(open(fixture))["config"]
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
h, f, v, L = config["hidden_size"], config["intermediate_size"], config["vocab_size"], config["num_hidden_layers"]
hd, kv = config["head_dim"], config["num_key_value_heads"]
shapes = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
for i in range(L):
    p = f"model.layers.{i}."
    shapes.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                   p + "self_attn.q_proj.weight": (config["num_attention_heads"] * hd, h),
                   p + "self_attn.k_proj.weight": (kv * hd, h), p + "self_attn.v_proj.weight": (kv * hd, h),
                   p + "self_attn.o_proj.weight": (h, config["num_attention_heads"] * hd),
                   p + "mlp.gate_proj.weight": (f, h), p + "mlp.up_proj.weight": (f, h), p + "mlp.down_proj.weight": (h, f)})
rng = np.random.default_rng(0)
header, blobs, offset = {}, [], 0
for name in sorted(shapes):
    shape = shapes[name]
    x = np.ones(shape, np.float32) if len(shape) == 1 else rng.standard_normal(shape, dtype=np.float32) * 0.02
    bits = x.view(np.uint32)
    bf16 = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
    data = bf16.tobytes()
    header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
head = json.dumps(header).encode()
head += b" " * (-len(head) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as fh:
    fh.write(struct.pack("<Q", len(head)) + head)
    for b in blobs:
        fh.write(b)
with open(os.path.join(out, "config.json"), "w") as fh:
    json.dump(dict(config, architectures=["LlamaForCausalLM"], torch_dtype="bfloat16"), fh, indent=1)
print(f"{out}: SmolLM2-135M shapes, {sum(int(np.prod(s)) for s in shapes.values())} parameters, bf16")
