"""Reference for PretrainTests: loads a ZOTune-written checkpoint (a from-scratch model) with
transformers and prints, as JSON, the mean next-token NLL of each window (transformers' own
shifted-label loss) and the last position's logits of the first window.

usage: check_pretrain.py MODEL_DIR WINDOWS_JSON   (WINDOWS_JSON: [[ids of L+1 tokens], ...])
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
windows = json.load(open(sys.argv[2]))
nll = []
with torch.inference_mode():
    for w in windows:
        ids = torch.tensor([w])
        nll.append(model(input_ids=ids, labels=ids).loss.item())
    logits = model(input_ids=torch.tensor([windows[0][:-1]])).logits[0, -1]
print(json.dumps({"architecture": model.config.architectures[0], "tied": model.config.tie_word_embeddings,
                  "initializer_range": model.config.initializer_range, "nll": nll, "logits": logits.tolist()}))
