#!/usr/bin/env python3
"""First-order reference for bench/pretrain.sh (reference venv only; never at run time).

Trains the same architecture from the same initial weights (a ZOTune run's init/ checkpoint) on
the same windows in the same order with Adam, and logs metrics.jsonl in ZOTune's keys (step,
loss, train_seconds, dev_perplexity). The corpus split, the windows (documents tokenized without
special tokens, each followed by EOS, cut every L tokens into L+1-token windows) and the minibatch
order (MinibatchSampler: one SplitMix-seeded Fisher-Yates permutation per epoch) are
re-implemented here and checked: the initial held-out perplexity must equal the ZO run's.

usage: pretrain_fo.py --zo-run DIR --corpus FILE --out DIR --seconds S [--lr 1e-3] [--eval-every N]
"""
import argparse
import json
import math
import os
import time

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

M64 = (1 << 64) - 1


def step_seed(run, step, direction):
    z = (run + 0x9E3779B97F4A7C15 * ((((step << 8) | (direction & 0xFF)) + 1) & M64)) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Sampler:
    def __init__(self, count, batch, data_seed):
        self.count, self.batch, self.seed, self.cache = count, batch, data_seed ^ 0xDA7A, (-1, None)

    def perm(self, epoch):
        if self.cache[0] == epoch:
            return self.cache[1]
        order = list(range(self.count))
        rng = step_seed(self.seed, epoch, 0)
        for j in range(self.count - 1, 0, -1):
            rng = step_seed(rng, j, 1)
            k = rng % (j + 1)
            order[j], order[k] = order[k], order[j]
        self.cache = (epoch, order)
        return order

    def indices(self, t):
        return [self.perm((t * self.batch + i) // self.count)[(t * self.batch + i) % self.count] for i in range(self.batch)]


def corpus(path, every):
    if path.lower().endswith(".json"):
        groups = [[p["context"] for p in a["paragraphs"]] for a in json.load(open(path))["data"]]
    else:
        text = open(path, encoding="utf-8").read().replace("\r\n", "\n")
        groups = [[d.strip()] for d in text.split("\n\n") if d.strip()]
    train, held = [], []
    for i, g in enumerate(groups):
        (held if every > 1 and i % every == every - 1 else train).extend(g)
    return train, held


def windows(tok, docs, eos, length):
    ids = []
    for d in docs:
        ids += tok.encode(d, add_special_tokens=False).ids + [eos]
    return [ids[s:s + length + 1] for s in range(0, len(ids) - length, length)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zo-run", required=True, help="a finished ZOTune pretrain run (init/, trajectory.zot header, summary.json)")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, required=True, help="training-time budget (train_seconds)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    header = read_header(os.path.join(a.zo_run, "trajectory.zot"))
    run = header["run"]
    length, batch, every = run["max_length"], run["batch_size"], 10
    data_seed = int(run["data_seed"])
    init = os.path.join(a.zo_run, "init")
    tok = Tokenizer.from_file(os.path.join(init, "tokenizer.json"))
    cfg = json.load(open(os.path.join(init, "config.json")))
    eos = cfg.get("eos_token_id", cfg.get("bos_token_id"))
    train_docs, held_docs = corpus(a.corpus, every)
    train = windows(tok, train_docs, eos, length)
    held = windows(tok, held_docs, eos, length)[: run.get("eval_count") or None]
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    sampler = Sampler(len(train), batch, data_seed)

    def held_loss():
        model.eval()
        total = 0.0
        with torch.inference_mode():
            for s in range(0, len(held), batch):
                x = torch.tensor(held[s:s + batch])
                logits = model(input_ids=x[:, :-1]).logits
                nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
                total += nll.view(x.shape[0], -1).mean(dim=1).sum().item()
        model.train()
        return total / len(held)

    zo = [json.loads(l) for l in open(os.path.join(a.zo_run, "metrics.jsonl"))]
    zo_before = next(o["dev_perplexity"] for o in zo if o["step"] == 0 and "dev_perplexity" in o)
    before = math.exp(held_loss())
    if abs(before - zo_before) > 1e-3 * zo_before:
        raise SystemExit(f"windows or weights differ from the ZO run: initial held-out perplexity {before} vs {zo_before}")
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.95))
    os.makedirs(a.out, exist_ok=True)
    lines = [{"step": 0, "dev_perplexity": before, "train_seconds": 0.0}]
    spent, t = 0.0, 0
    while spent < a.seconds:
        x = torch.tensor([train[i] for i in sampler.indices(t)])
        start = time.time()
        logits = model(input_ids=x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        spent += time.time() - start
        t += 1
        o = {"step": t, "loss": loss.item(), "train_seconds": round(spent, 3)}
        if t % a.eval_every == 0 or spent >= a.seconds:
            o["dev_perplexity"] = math.exp(held_loss())
            print(f"step {t}  loss {o['loss']:.4f}  held-out ppl {o['dev_perplexity']:.2f}  {spent:.0f} s", flush=True)
        lines.append(o)
    with open(os.path.join(a.out, "metrics.jsonl"), "w") as f:
        f.write("\n".join(json.dumps(o, sort_keys=True) for o in lines) + "\n")
    json.dump({"optimizer": "adam (first-order reference)", "lr": a.lr, "steps": t, "train_seconds": spent,
               "perplexity_before": before, "perplexity_after": lines[-1]["dev_perplexity"],
               "parameters": sum(p.numel() for p in model.parameters())}, open(os.path.join(a.out, "summary.json"), "w"), sort_keys=True)


def read_header(path):
    b = open(path, "rb").read()
    n = int.from_bytes(b[8:12], "little")
    return json.loads(b[12:12 + n])


if __name__ == "__main__":
    main()
