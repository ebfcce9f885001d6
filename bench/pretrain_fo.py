#!/usr/bin/env python3
"""First-order references for the pre-training benchmarks (reference venv only; never at run time).

Phases (--phase):
  time       bench/pretrain.sh: Adam on every parameter from a ZOTune run's init/, for --seconds of
             training time (the ZO cell's).
  embed      seed 000's first block (bench/pretrain_seed000.sh): the token embeddings (tied head)
             trained for --epochs epochs, every other tensor frozen at its seeded init; written to
             OUT/model/ as a Hugging Face checkpoint (config.json, model.safetensors with the init's
             tensor names, the tokenizer's files) that `zotune pretrain --init-from` loads.
  layerwise  the FO arm of seed 000's layer-wise schedule, from --init (the embed checkpoint):
             layer 0 for one epoch, frozen, layer 1 re-initialised and trained one epoch, ...
             (embeddings frozen; the final norm trains with the last layer, as ZOTune's
             --blocks layer+norm). Resumable block by block (OUT/partial/).
  full       every parameter from the seeded init for --epochs epochs (the schedule's total budget).
embed and full resume from their last --save-every checkpoint (OUT/partial/state.pt).
An epoch is --epoch-steps steps of --batch windows (bench/pretrain_seed000.sh sizes it).

Same data as the ZO runs: the corpus split, the windows (documents tokenized without special
tokens, each followed by EOS, cut every L tokens into L+1-token windows) and the minibatch order
(MinibatchSampler: one SplitMix-seeded Fisher-Yates permutation per epoch, step t taking the t-th
batch of that stream) are re-implemented here, with L, B, the data seed and the held-out count read
from a ZOTune run's trajectory header (--zo-run), and checked: the initial held-out perplexity must
equal that run's step-0 evaluation. Phase layerwise's step counter runs on across blocks as the ZO
sequential schedule's does, so block k of either arm sees the same windows.

Each phase writes OUT/metrics.jsonl in ZOTune's keys (step, loss, train_seconds, dev_perplexity;
plus block) and OUT/summary.json; a phase whose summary.json exists is skipped.

usage: pretrain_fo.py --zo-run DIR --corpus FILE --out DIR --phase time --seconds S [--lr 1e-3]
       pretrain_fo.py --zo-run DIR --corpus FILE --out DIR --phase embed|full --epoch-steps S --epochs N
       pretrain_fo.py --zo-run DIR --corpus FILE --out DIR --phase layerwise --init DIR --epoch-steps S
"""
import argparse
import json
import math
import os
import shutil
import time

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

M64 = (1 << 64) - 1
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


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


def read_header(path):
    b = open(path, "rb").read()
    n = int.from_bytes(b[8:12], "little")
    return json.loads(b[12:12 + n])


class Data:
    """The ZO run's windows, order and held-out set; held_loss(model) = ln held-out perplexity."""

    def __init__(self, zo_run, corpus_path):
        run = read_header(os.path.join(zo_run, "trajectory.zot"))["run"]
        self.length, self.batch = run["max_length"], run["batch_size"]
        self.init = os.path.join(zo_run, "init")
        tok = Tokenizer.from_file(os.path.join(self.init, "tokenizer.json"))
        cfg = json.load(open(os.path.join(self.init, "config.json")))
        eos = cfg.get("eos_token_id", cfg.get("bos_token_id"))
        train_docs, held_docs = corpus(corpus_path, 10)
        self.train = windows(tok, train_docs, eos, self.length)
        self.held = windows(tok, held_docs, eos, self.length)[: run.get("eval_count") or None]
        self.sampler = Sampler(len(self.train), self.batch, int(run["data_seed"]))
        zo = [json.loads(l) for l in open(os.path.join(zo_run, "metrics.jsonl")) if l.strip()]
        self.zo_before = next(o["dev_perplexity"] for o in zo if o["step"] == 0 and "dev_perplexity" in o)

    def batch_at(self, t):
        return torch.tensor([self.train[i] for i in self.sampler.indices(t)])

    def held_loss(self, model):
        model.eval()
        total = 0.0
        with torch.inference_mode():
            for s in range(0, len(self.held), self.batch):
                x = torch.tensor(self.held[s:s + self.batch])
                logits = model(input_ids=x[:, :-1]).logits
                nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
                total += nll.view(x.shape[0], -1).mean(dim=1).sum().item()
        model.train()
        return total / len(self.held)


def check_same(before, reference, what):
    # The same f32 weights and windows through transformers vs ZOTune's kernels: the summation
    # order differs, 1e-3 relative on the perplexity (1e-3 absolute on the loss) is ~100x the f32
    # spread over 64 windows x 64 targets, while a wrong window or tensor moves it by far more.
    if abs(before - reference) > 1e-3 * reference:
        raise SystemExit(f"pretrain_fo.py: {what}: initial held-out perplexity {before:.4f} vs {reference:.4f} (windows or weights differ)")


def make_opt(name, params, lr):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.95))
    return torch.optim.SGD(params, lr=lr)


def train_steps(model, data, opt, t0, steps, eval_every, lines, spent, block=None, eval_at_end=True, eval_from=None):
    """steps FO steps on the sampler's batches t0, t0+1, ...; an evaluation every eval_every steps
    (counted from eval_from, default t0) and (eval_at_end) after the last. Returns the training
    seconds spent so far."""
    origin = t0 if eval_from is None else eval_from
    for t in range(t0, t0 + steps):
        x = data.batch_at(t)
        start = time.time()
        logits = model(input_ids=x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        spent += time.time() - start
        o = {"step": t + 1, "loss": loss.item(), "train_seconds": round(spent, 3)}
        if block is not None:
            o["block"] = block
        if (t + 1 - origin) % eval_every == 0 or (eval_at_end and t + 1 == t0 + steps):
            o["dev_perplexity"] = math.exp(data.held_loss(model))
            print(f"step {t + 1}  loss {o['loss']:.4f}  held-out loss {math.log(o['dev_perplexity']):.4f}  {spent:.0f} s", flush=True)
        lines.append(o)
    return spent


def write_checkpoint(model, init, out):
    """model's tensors under the init checkpoint's names (the tied head is not stored), with the
    init's config and tokenizer files: the layout `zotune pretrain` writes and reads."""
    os.makedirs(out, exist_ok=True)
    state = model.state_dict()
    with safe_open(os.path.join(init, "model.safetensors"), "pt") as f:
        names = list(f.keys())
    save_file({n: state[n].detach().contiguous().clone() for n in names}, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    for name in ("config.json",) + TOKENIZER_FILES:
        if os.path.exists(os.path.join(init, name)):
            shutil.copyfile(os.path.join(init, name), os.path.join(out, name))


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(json.dumps(o, sort_keys=True) for o in lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zo-run", required=True, help="a ZOTune pretrain run (init/, trajectory.zot header, metrics.jsonl)")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--phase", choices=["time", "embed", "layerwise", "full"], default="time")
    ap.add_argument("--init", help="layerwise: the checkpoint to start from (the embed phase's OUT/model)")
    ap.add_argument("--seconds", type=float, help="time: training-time budget (train_seconds)")
    ap.add_argument("--epoch-steps", type=int, help="steps in one epoch (embed, layerwise, full)")
    ap.add_argument("--epochs", type=int, default=1, help="embed, full: epochs (layerwise: one per block)")
    ap.add_argument("--optim", choices=["adam", "sgd"], default="adam", help="adam (β 0.9/0.95) or plain SGD")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-every", type=int, default=50, help="embed, full: steps between resumable checkpoints")
    a = ap.parse_args()
    if os.path.exists(os.path.join(a.out, "summary.json")):
        print(f"{a.out}: done (summary.json)")
        return
    if a.phase == "time" and a.seconds is None:
        ap.error("--phase time needs --seconds")
    if a.phase != "time" and not a.epoch_steps:
        ap.error(f"--phase {a.phase} needs --epoch-steps")
    for what, path in (("--corpus", a.corpus), ("--zo-run", a.zo_run)):
        if not os.path.exists(path):
            ap.error(f"{what} {path}: no such file or directory")
    if not a.save_every or a.save_every < 1:   # 0, negative (NaN cannot parse as int)
        ap.error(f"--save-every must be a positive number of steps, got {a.save_every}")
    if a.phase == "layerwise" and not a.init:
        ap.error("--phase layerwise needs --init (the embed phase's model directory)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    data = Data(a.zo_run, a.corpus)
    os.makedirs(a.out, exist_ok=True)
    start_from = a.init if a.phase == "layerwise" else data.init
    model = AutoModelForCausalLM.from_pretrained(start_from, dtype=torch.float32)
    summary = {"phase": a.phase, "optimizer": f"{a.optim} (first-order reference)", "lr": a.lr, "batch": data.batch,
               "seq_len": data.length, "parameters": sum(p.numel() for p in model.parameters())}

    if a.phase == "layerwise":
        run_layerwise(a, data, model, summary)
        return
    before = math.exp(data.held_loss(model))
    check_same(before, data.zo_before, a.zo_run)
    lines = [{"step": 0, "dev_perplexity": before, "train_seconds": 0.0}]
    if a.phase == "time":
        opt = make_opt(a.optim, model.parameters(), a.lr)
        spent, t = 0.0, 0
        while spent < a.seconds:
            spent = train_steps(model, data, opt, t, 1, 1 << 62, lines, spent, eval_at_end=False)
            t += 1
            if t % a.eval_every == 0 or spent >= a.seconds:
                lines[-1]["dev_perplexity"] = math.exp(data.held_loss(model))
                print(f"step {t}  loss {lines[-1]['loss']:.4f}  held-out ppl {lines[-1]['dev_perplexity']:.2f}  {spent:.0f} s", flush=True)
        steps = t
    else:
        steps = a.epoch_steps * a.epochs
        if a.phase == "embed":
            for n, p in model.named_parameters():
                p.requires_grad_(n == "model.embed_tokens.weight")
            trained = [p for p in model.parameters() if p.requires_grad]
            assert len(trained) == 1 and model.lm_head.weight is model.model.embed_tokens.weight, "the head must be tied"
        else:
            trained = list(model.parameters())
        summary["trained_parameters"] = sum(p.numel() for p in trained)
        opt = make_opt(a.optim, trained, a.lr)
        # Resumable in chunks of --save-every steps: the model, Adam's moments, the metrics and the
        # step go to OUT/partial/state.pt (temp file + rename); a rerun continues from there on the
        # same batches (the sampler is a function of the step), so a stopped phase loses at most
        # one chunk.
        ckpt = os.path.join(a.out, "partial", "state.pt")
        t, spent = 0, 0.0
        if os.path.exists(ckpt):
            st = torch.load(ckpt, weights_only=False)
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            t, spent, lines = st["step"], st["train_seconds"], st["lines"]
            print(f"{a.out}: resuming at step {t} of {steps}", flush=True)
        while t < steps:
            chunk = min(a.save_every, steps - t)
            spent = train_steps(model, data, opt, t, chunk, a.eval_every, lines, spent, eval_at_end=t + chunk == steps, eval_from=0)
            t += chunk
            if t < steps:
                os.makedirs(os.path.dirname(ckpt), exist_ok=True)
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": t, "train_seconds": spent,
                            "lines": lines}, ckpt + ".tmp")
                os.replace(ckpt + ".tmp", ckpt)
        if a.phase == "embed":
            write_checkpoint(model, data.init, os.path.join(a.out, "model"))
        shutil.rmtree(os.path.join(a.out, "partial"), ignore_errors=True)
    write_lines(os.path.join(a.out, "metrics.jsonl"), lines)
    summary.update({"steps": steps, "epochs": a.epochs if a.phase != "time" else None, "epoch_steps": a.epoch_steps,
                    "train_seconds": spent, "perplexity_before": before, "perplexity_after": lines[-1]["dev_perplexity"],
                    "passes_per_step": "1 forward + 1 backward"})
    json.dump(summary, open(os.path.join(a.out, "summary.json"), "w"), sort_keys=True, indent=1)


def run_layerwise(a, data, model, summary):
    """Layer k (the last with the final norm): re-initialised to the seeded init's values (the
    --zo-run's init/ checkpoint: what ZOTune's --block-reinit draws in the first pass, so both arms
    start each block from the same weights), trained alone for one epoch with a fresh optimizer,
    then frozen. OUT/partial/ holds the weights and metrics after the last finished block, so an
    interrupted run resumes at the next block."""
    layers = model.config.num_hidden_layers
    partial = os.path.join(a.out, "partial")
    state_path = os.path.join(partial, "state.json")
    if os.path.exists(state_path):
        st = json.load(open(state_path))
        with safe_open(os.path.join(partial, "model.safetensors"), "pt") as f:
            model.load_state_dict({n: f.get_tensor(n) for n in f.keys()}, strict=False)
        lines, done, spent, before = st["lines"], st["blocks_done"], st["train_seconds"], st["perplexity_before"]
        print(f"{a.out}: resuming after block {done - 1}")
    else:
        before = math.exp(data.held_loss(model))
        emb = os.path.join(os.path.dirname(os.path.abspath(a.init)), "summary.json")
        if os.path.exists(emb):   # the embed phase's last evaluation: the checkpoint round-trips
            check_same(before, json.load(open(emb))["perplexity_after"], a.init)
        lines, done, spent = [{"step": 0, "dev_perplexity": before, "train_seconds": 0.0}], 0, 0.0
    for k in range(done, layers):
        # The last block holds the final norm too (ZOTune's --blocks layer+norm).
        prefixes = (f"model.layers.{k}.",) + (("model.norm.",) if k == layers - 1 else ())
        block = [model.model.layers[k]] + ([model.model.norm] if k == layers - 1 else [])
        with safe_open(os.path.join(data.init, "model.safetensors"), "pt") as f, torch.no_grad():
            params = dict(model.named_parameters())
            for n in f.keys():
                if n.startswith(prefixes):
                    params[n].copy_(f.get_tensor(n))
        trained = [p for m in block for p in m.parameters()]
        for p in model.parameters():
            p.requires_grad_(any(p is q for q in trained))
        print(f"== block {k + 1}: layer {k} ({sum(p.numel() for p in trained)} parameters)", flush=True)
        opt = make_opt(a.optim, trained, a.lr)
        spent = train_steps(model, data, opt, k * a.epoch_steps, a.epoch_steps, a.eval_every, lines, spent, block=k + 1)
        # Each file through a temp file + rename, the weights first: a stop between the renames
        # leaves this block's weights with the previous state, and the rerun redoes this block
        # from its re-initialised layer (the other layers are the same in both), as if never run.
        os.makedirs(partial, exist_ok=True)
        weights = os.path.join(partial, "model.safetensors")
        save_file({n: t.detach().contiguous().clone() for n, t in model.state_dict().items() if n != "lm_head.weight"}, weights + ".tmp")
        with open(state_path + ".tmp", "w") as f:
            json.dump({"lines": lines, "blocks_done": k + 1, "train_seconds": spent, "perplexity_before": before}, f)
        os.replace(weights + ".tmp", weights)
        os.replace(state_path + ".tmp", state_path)
    write_lines(os.path.join(a.out, "metrics.jsonl"), lines)
    summary.update({"steps": layers * a.epoch_steps, "blocks": layers, "epoch_steps": a.epoch_steps, "train_seconds": spent,
                    "perplexity_before": before, "perplexity_after": lines[-1]["dev_perplexity"],
                    "trained_parameters_per_block": sum(p.numel() for p in model.model.layers[0].parameters()),
                    "passes_per_step": "1 forward + 1 backward"})
    json.dump(summary, open(os.path.join(a.out, "summary.json"), "w"), sort_keys=True, indent=1)
    shutil.rmtree(partial)


if __name__ == "__main__":
    main()
