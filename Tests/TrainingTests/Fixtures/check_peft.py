#!/usr/bin/env python3
"""Loads adapters exported by ZOTune (HF PEFT format) onto their base models with
peft.PeftModel.from_pretrained and prints, as one JSON line, the logits of every real position
for the given token ids. Used by PEFTExportTests (reference only; never at run time).
    python check_peft.py < jobs.json     jobs: [{"base": DIR, "adapter": DIR, "ids": [..]}, ...]"""
import json, sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

out = []
for job in json.load(sys.stdin):
    base = AutoModelForCausalLM.from_pretrained(job["base"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, job["adapter"]).eval()
    ids = torch.tensor([job["ids"]])
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
    # Prompt tuning returns the virtual positions too: keep the real tokens' rows.
    out.append({"peft_type": str(model.peft_config["default"].peft_type.value),
                "logits": logits[-len(job["ids"]):].flatten().tolist()})
print(json.dumps(out))
