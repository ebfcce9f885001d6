#!/usr/bin/env python3
"""Loads model directories exported by `zotune train`/`zotune replay` with transformers and prints,
as one JSON list, each model's class and the logits of the last position for its token ids.
Used by ExportTests (reference only; never at run time). One process for every model: importing
torch costs seconds, a tiny model milliseconds.
    python check_export.py < jobs.json     jobs: [{"dir": MODEL_DIR, "ids": [ID, ...]}, ...]"""
import json, sys

import torch
from transformers import AutoModelForCausalLM

out = []
for job in json.load(sys.stdin):
    model = AutoModelForCausalLM.from_pretrained(job["dir"], dtype=torch.float32).eval()
    ids = torch.tensor([[int(x) for x in job["ids"]]])
    with torch.inference_mode():
        logits = model(ids).logits[0, -1].tolist()
    out.append({"architecture": type(model).__name__, "logits": logits})
print(json.dumps(out))
