#!/usr/bin/env python3
"""Loads a model directory exported by `zotune train`/`zotune replay` with transformers and prints,
as one JSON line, the logits of the last position for the token ids given on the command line.
Used by ExportTests (reference only; never at run time).
    python check_export.py MODEL_DIR ID [ID ...]"""
import json, sys

import torch
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
ids = torch.tensor([[int(x) for x in sys.argv[2:]]])
with torch.inference_mode():
    logits = model(ids).logits[0, -1].tolist()
print(json.dumps({"architecture": type(model).__name__, "logits": logits}))
