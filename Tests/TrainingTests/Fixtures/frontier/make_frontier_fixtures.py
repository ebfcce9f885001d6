#!/usr/bin/env python3
"""PyTorch reference for ZOTune's frontier optimizers (fzoo, sparse-mezo, mezo-svrg, lowrank-spsa):
torch, fed ZOTune's own directions (written by `zotune stream`), runs five steps of each on the tiny
Llama; FrontierReferenceTests holds ZOTune to the result.

The updates are written from the equations of shared/docs/ZO-FRONTIER.md (§2 FZOO, §5 MeZO-SVRG with
a shared z and a real anchor copy, §6 Sparse MeZO with the |θ| mask of the clean θ, §9.2 low-rank
SPSA), in float32 with in-place perturbations in the algorithm's order. They are not a port of the
Swift code: e.g. the low-rank probes here write θ ± εE_k into the weights one member at a time
(ZOTune never writes θ while probing), and MeZO-SVRG keeps θ itself (ZOTune rebuilds θ from the
anchor every step).

Run with the reference venv, from the package root, after `swift build`:
    .venv-ref/bin/python Tests/TrainingTests/Fixtures/frontier/make_frontier_fixtures.py .build/debug/zotune
Deterministic on one machine (torch on one thread, fixed seeds). The directions are not committed
(they are MBs): frontier.json keeps, per step and tensor, the sum of the f32 bit patterns of each
direction, which the test recomputes from ZOTune's stream.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))
from fixture_versions import record_versions  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../../../.."))
MODEL = os.path.join(ROOT, "Tests/ModelTests/Fixtures/models/llama")

torch.set_num_threads(1)

STEPS, RUN_SEED, EPS = 5, 11, 1e-2
B, T, VOCAB = 2, 8, 512
# Search minibatches of MeZO-SVRG's full steps: j = 0, 1, ... (numpy seeds 100 + j).
SEARCH_BATCHES = 6  # full steps t = 0, 2, 4 take j = 0-1, 2-3, 4-5

CONFIGS = {
    # N = 4 probes; η: FZOO moves each coordinate by ≈ η/√N whatever the loss scale.
    "fzoo": {"lr": 1e-3, "probes": 4, "min_std": 1e-6},
    # sparsity 0.8: the 20 % smallest |θ| of each tensor move.
    "sparse-mezo": {"lr": 1e-3, "sparsity": 0.8},
    # q = 2: full steps at t = 0, 2, 4 over 3 minibatches (the step's + 2 search), η₁ = 10η.
    "mezo-svrg": {"lr": 1e-3, "anchor_every": 2, "anchor_batches": 3, "anchor_lr_scale": 10},
    # q = 3 rank-2 directions: exercises both the 1/q and the 1/√r.
    "lowrank-spsa": {"lr": 1e-3, "directions": 3, "rank": 2},
}


def f32(x):
    return float(np.float32(x))


def f32_bits(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32)).view(np.uint32).tolist()


def bits_sum(t):
    """Sum of the f32 bit patterns (exact integer): a fingerprint of a direction tensor."""
    return int(t.contiguous().view(torch.int32).numpy().astype(np.uint32).astype(np.uint64).sum())


def load_model():
    return AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()


@torch.no_grad()
def lm_loss(model, ids):
    """Mean next-token cross-entropy over all B·(T-1) positions: f32 log-softmax, f64 mean."""
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
    lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return float((-lp.double()).mean())


def batch(seed):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, VOCAB, size=(B, T)).astype(np.int64))


def streams(zotune, tmp):
    out = os.path.join(tmp, "dirs.safetensors")
    hp_f, hp_l = CONFIGS["fzoo"], CONFIGS["lowrank-spsa"]
    subprocess.run([zotune, "stream", "--model", MODEL, "--run-seed", str(RUN_SEED), "--steps", str(STEPS),
                    "--rademacher", str(hp_f["probes"]), "--lowrank-directions", str(hp_l["directions"]),
                    "--lowrank-rank", str(hp_l["rank"]), "--out", out], check=True, stdout=subprocess.DEVNULL)
    with safe_open(out, "pt") as f:
        meta = f.metadata()
    return load_file(out), meta


def run(name, hp, d, ids, search):
    model = load_model()
    params = dict(model.named_parameters())
    lr = hp["lr"]
    forwards = []

    def L(b=None):
        loss = lm_loss(model, ids if b is None else b)
        forwards.append(loss)
        return loss

    steps = []
    anchor, gbar, zbar = None, None, None
    with torch.no_grad():
        for t in range(STEPS):
            forwards.clear()
            z = {n: d[f"step{t}/{n}"] for n in params}
            rec = {}
            if name == "fzoo":
                n_probes = hp["probes"]
                u = [{n: d[f"step{t}/rademacher{k}/{n}"] for n in params} for k in range(n_probes)]
                losses = []
                for k in range(n_probes):  # θ + εu_k → ℓ_k, then back
                    for n, p in params.items():
                        p.add_(u[k][n], alpha=EPS)
                    losses.append(L())
                    for n, p in params.items():
                        p.add_(u[k][n], alpha=-EPS)
                l0 = L()  # the clean forward after the probes
                mean = sum(losses) / n_probes
                sigma = math.sqrt(sum((x - mean) ** 2 for x in losses) / n_probes)  # population std
                assert sigma > hp["min_std"], "the σ guard would skip this step: pick another seed"
                g = [f32((x - l0) / (n_probes * sigma)) for x in losses]
                for k in range(n_probes):  # θ ← θ − η Σ_k g_k u_k
                    for n, p in params.items():
                        p.add_(u[k][n], alpha=-lr * g[k])
                rec.update(g=g, sigma=sigma)
            elif name == "sparse-mezo":
                masks = {}
                for n, p in params.items():  # h: the k-th smallest |θ| of the clean θ, k = round((1 − s)n)
                    k = max(1, int(math.floor((1 - hp["sparsity"]) * p.numel() + 0.5)))
                    h = p.detach().abs().flatten().kthvalue(k).values
                    masks[n] = (p.detach().abs() <= h).float()
                mz = {n: masks[n] * z[n] for n in params}
                for n, p in params.items():
                    p.add_(mz[n], alpha=EPS)
                lp = L()
                for n, p in params.items():
                    p.add_(mz[n], alpha=-2 * EPS)
                lm = L()
                g = f32((lp - lm) / (2 * EPS))
                for n, p in params.items():
                    p.add_(mz[n], alpha=EPS)
                    p.add_(mz[n], alpha=-lr * g)
                rec.update(g=[g], kept=[int(masks[n].sum()) for n in params])
            elif name == "mezo-svrg":
                q, nb, lr1 = hp["anchor_every"], hp["anchor_batches"], hp["anchor_lr_scale"] * lr
                if t % q == 0:  # full step: θ̄ ← θ, ḡ over nb minibatches along z̄ = z_t, θ ← θ̄ − η₁ḡz̄
                    anchor = {n: p.detach().clone() for n, p in params.items()}
                    first = (t // q) * (nb - 1)
                    batches = [ids] + [search[first + j] for j in range(nb - 1)]
                    for n, p in params.items():
                        p.copy_(anchor[n] + EPS * z[n])
                    plus = [L(b) for b in batches]
                    for n, p in params.items():
                        p.copy_(anchor[n] - EPS * z[n])
                    minus = [L(b) for b in batches]
                    gbar = f32(sum((a - b) / (2 * EPS) for a, b in zip(plus, minus)) / nb)
                    zbar = z
                    for n, p in params.items():
                        p.copy_(anchor[n] - lr1 * gbar * zbar[n])
                    rec.update(g=[gbar, 0.0, 1.0], search=list(range(first, first + nb - 1)))
                else:  # g₁ at θ and g₂ at θ̄ along the same z; θ ← θ − η((g₁ − g₂)z + ḡz̄)
                    theta = {n: p.detach().clone() for n, p in params.items()}
                    out = []
                    for base in (theta, anchor):
                        for n, p in params.items():
                            p.copy_(base[n] + EPS * z[n])
                        lp = L()
                        for n, p in params.items():
                            p.copy_(base[n] - EPS * z[n])
                        lm = L()
                        out.append(f32((lp - lm) / (2 * EPS)))
                    g1, g2 = out
                    for n, p in params.items():
                        p.copy_(theta[n] - lr * (g1 - g2) * z[n] - lr * gbar * zbar[n])
                    rec.update(g=[g1, g2, 0.0])
            elif name == "lowrank-spsa":
                q, r = hp["directions"], hp["rank"]
                covered = sorted({k.split("/")[2] for k in d if k.startswith(f"step{t}/lowrank/")})
                E = []
                for k in range(q):  # E_k = A_k B_kᵀ/√r, A_kᵀ = rows k·r … of "A", B_kᵀ likewise
                    E.append({n: (d[f"step{t}/lowrank/{n}/A"][k * r:(k + 1) * r].T @ d[f"step{t}/lowrank/{n}/B"][k * r:(k + 1) * r])
                              / math.sqrt(r) for n in covered})
                g = []
                for k in range(q):  # member 2k: θ + εE_k, 2k + 1: θ − εE_k, written in place one at a time
                    for n in covered:
                        params[n].add_(E[k][n], alpha=EPS)
                    lp = L()
                    for n in covered:
                        params[n].add_(E[k][n], alpha=-2 * EPS)
                    lm = L()
                    for n in covered:
                        params[n].add_(E[k][n], alpha=EPS)
                    g.append(f32((lp - lm) / (2 * EPS)))
                for n in covered:  # W ← W − (η/q) Σ_k g_k E_k
                    params[n].sub_(sum(g[k] * E[k][n] for k in range(q)), alpha=lr / q)
                rec.update(g=g, covered=covered)
            else:
                raise ValueError(name)
            rec["forwards"] = list(forwards)
            steps.append(rec)
    return steps, {f"{name}/{n}": p.detach().clone().contiguous() for n, p in params.items()}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    zotune = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        d, meta = streams(zotune, tmp)
    names = [n for n, _ in load_model().named_parameters()]
    ids = batch(1)
    search = [batch(100 + j) for j in range(SEARCH_BATCHES)]
    doc = {
        "about": "five steps per frontier optimizer on Tests/ModelTests/Fixtures/models/llama from its checkpoint, fed the "
                 "directions of `zotune stream --run-seed 11` (normal z, FZOO's Rademacher probes, low-rank factors); "
                 "final weights in frontier_expected.safetensors as '<optimizer>/<name>'",
        "torch": torch.__version__,
        "run_seed": RUN_SEED, "steps": STEPS, "eps": EPS,
        "step_seeds": [int(meta[f"seed_step{t}"]) for t in range(STEPS)],
        "batch": {"batch": B, "length": T, "ids": ids.flatten().tolist()},
        "search": [s.flatten().tolist() for s in search],
        "tensors": names,
        # Per step: {direction name: {tensor: sum of its f32 bit patterns}}.
        "direction_bits": [{k.split("/", 1)[1]: bits_sum(v) for k, v in sorted(d.items()) if k.startswith(f"step{t}/")}
                           for t in range(STEPS)],
        "optimizers": {},
    }
    expected = {}
    for name, hp in CONFIGS.items():
        steps, weights = run(name, hp, d, ids, search)
        doc["optimizers"][name] = {"hyper": {"eps": EPS, **hp}, "steps": steps}
        expected.update(weights)
        print(f"{name:13s} g = {[[round(x, 4) for x in s['g']] for s in steps]}")
    out = os.path.join(HERE, "frontier_expected.safetensors")
    save_file(expected, out, metadata={"torch": torch.__version__})
    os.chmod(out, 0o644)
    with open(os.path.join(HERE, "frontier.json"), "w") as f:
        json.dump(doc, f, indent=1)
    for f in sorted(os.listdir(HERE)):
        print(f"{os.path.getsize(os.path.join(HERE, f)):>9} {f}")


if __name__ == "__main__":
    main()
    record_versions(__file__)
