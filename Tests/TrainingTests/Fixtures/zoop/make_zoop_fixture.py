#!/usr/bin/env python3
"""PyTorch reference for Zoop's estimate (ZoopTests): autograd on the tiny Llama fixture.

For fixed token sequences, each run alone (batch of one, no padding, so the Swift side's left
padding and row bookkeeping are checked too), with the per-sequence loss
    l_i = mean over positions t < T_i - 1 of -log p(token_{t+1} | tokens <= t),
this writes
  * "small": 4 sequences of different lengths, their losses, and dl_i/dy for the output y of every
    linear layer of both blocks (per token, per channel): Zoop's alpha_i = (l_i(+eps xi) - l_i(-eps xi))/2eps
    must equal sum over layers of <dl_i/dy, xi> to first order;
  * "large": 64 sequences and the gradient of sum_i l_i with respect to every linear weight of the
    blocks: E[G_hat] for Zoop's estimate G_hat = sum_i alpha_i sum_t xi x^T.
Run from the package root with the reference venv:
    .venv-ref/bin/python Tests/TrainingTests/Fixtures/zoop/make_zoop_fixture.py
Deterministic: re-running rewrites the same file.
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM


# record_versions: Tests/fixture_versions.py, shared by the fixture scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))
from fixture_versions import record_versions  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../../../.."))
MODEL = os.path.join(ROOT, "Tests/ModelTests/Fixtures/models/llama")
torch.set_num_threads(1)

model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
model.eval()
linears = {}
for name, module in model.named_modules():
    if isinstance(module, torch.nn.Linear) and ".layers." in name:
        linears[name + ".weight"] = module


def sequences(count, seed, lo, hi):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, model.config.vocab_size, size=int(rng.integers(lo, hi + 1))).tolist() for _ in range(count)]


def loss_of(ids):
    x = torch.tensor([ids])
    logits = model(input_ids=x).logits[0].float()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    return -logp.gather(1, x[0, 1:, None]).mean()


def small_case():
    seqs = sequences(4, 11, 4, 9)
    out = {"sequences": seqs, "losses": [], "output_grads": []}
    for ids in seqs:
        outputs = {}

        def keep(n):
            def hook(mod, inp, o):
                o.retain_grad()
                outputs[n] = o
            return hook

        hooks = [m.register_forward_hook(keep(n)) for n, m in linears.items()]
        model.zero_grad()
        loss = loss_of(ids)
        loss.backward()
        for h in hooks:
            h.remove()
        out["losses"].append(loss.item())
        out["output_grads"].append({n: outputs[n].grad[0].reshape(-1).tolist() for n in linears})
    return out


def large_case():
    seqs = sequences(64, 12, 5, 10)
    model.zero_grad()
    total = sum(loss_of(ids) for ids in seqs)
    total.backward()
    return {"sequences": seqs, "loss_sum": total.item(),
            "weight_grads": {n: m.weight.grad.reshape(-1).tolist() for n, m in linears.items()}}


with open(os.path.join(HERE, "zoop.json"), "w") as f:
    json.dump({"small": small_case(), "large": large_case()}, f)
record_versions(__file__)
