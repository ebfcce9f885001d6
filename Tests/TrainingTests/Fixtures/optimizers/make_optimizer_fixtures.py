#!/usr/bin/env python3
"""PyTorch reference for ZOTune's zeroth-order optimizers (llm.c style): torch, fed ZOTune's own
perturbation directions z (written by `zotune stream`), computes what each optimizer must do.
OptimizerReferenceTests holds ZOTune to these numbers.

The algorithms follow ZO-FAMILY.md §2, §4.1-§4.5 and §4.8 (ZO-Muon), written here from the equations (they are
not a port of the Swift code): SPSA probes in place (θ += εz, θ -= 2εz, θ += εz), g = (ℓ₊-ℓ₋)/2ε
rounded to float32, then the optimizer's move. Parameters and all tensor arithmetic are float32.

Run with the reference venv, from the package root, after `swift build`:
    .venv-ref/bin/python Tests/TrainingTests/Fixtures/optimizers/make_optimizer_fixtures.py .build/debug/zotune
Deterministic: re-running rewrites the same files (see README.md in this folder for what they hold).
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM


# record_versions: Tests/fixture_versions.py, shared by the fixture scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))
from fixture_versions import record_versions  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../../../.."))
MODEL = os.path.join(ROOT, "Tests/ModelTests/Fixtures/models/llama")

torch.set_num_threads(1)  # the same reductions (and so the same bits) on every re-run


def f32_bits(a):
    """float32 values as their IEEE bit patterns (uint32), for exact round trips through JSON."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32)).view(np.uint32).tolist()


def stream(zotune, out, *args):
    subprocess.run([zotune, "stream", *args, "--out", out], check=True, stdout=subprocess.DEVNULL)
    with safe_open(out, "pt") as f:
        meta = f.metadata()
    return load_file(out), meta


# ---------------------------------------------------------------------------------------------
# (a) The update rules alone: torch.optim.SGD(momentum) and torch.optim.Adam fed ĝ_t = g_t·z_t.
# ---------------------------------------------------------------------------------------------
UPD_STEPS, UPD_COUNT, UPD_SEED = 100, 64, 5
SGD_LR, SGD_MOMENTUM = 1e-2, 0.9
ADAM_LR = 1e-3


def make_updates(zotune):
    z, meta = stream(zotune, os.path.join(HERE, "updates_z.safetensors"), "--name", "w", "--count", str(UPD_COUNT),
                     "--run-seed", str(UPD_SEED), "--steps", str(UPD_STEPS))
    rng = np.random.default_rng(0)
    theta0 = (rng.standard_normal(UPD_COUNT) * 0.1).astype(np.float32)
    g = rng.standard_normal(UPD_STEPS).astype(np.float32)

    def run(make_opt):
        w = torch.nn.Parameter(torch.from_numpy(theta0.copy()))
        opt = make_opt([w])
        thetas = []
        for t in range(UPD_STEPS):
            zt = z[f"step{t}/w"]
            assert zt.dtype == torch.float32 and zt.shape == (UPD_COUNT,)
            w.grad = zt * torch.tensor(g[t], dtype=torch.float32)  # ĝ_t, one f32 rounding per element
            opt.step()
            thetas.append(f32_bits(w.detach().numpy()))
        return thetas

    sgd = run(lambda p: torch.optim.SGD(p, lr=SGD_LR, momentum=SGD_MOMENTUM, foreach=False))
    adam = run(lambda p: torch.optim.Adam(p, lr=ADAM_LR, foreach=False))
    doc = {
        "about": "theta_t after step t (index t-1) of torch.optim.SGD / Adam fed grad = g[t] * z_t, "
                 "z_t = tensor 'step{t}/w' of updates_z.safetensors; float32 values as uint32 bit patterns",
        "torch": torch.__version__,
        "run_seed": UPD_SEED, "steps": UPD_STEPS, "count": UPD_COUNT, "name": "w",
        "step_seeds": [int(meta[f"seed_step{t}"]) for t in range(UPD_STEPS)],
        "theta0_bits": f32_bits(theta0),
        "g_bits": f32_bits(g),
        "g": [float(v) for v in g],  # the same values, readable (each is exactly the float32)
        "sgd": {"lr": SGD_LR, "momentum": SGD_MOMENTUM, "dampening": 0, "nesterov": False, "theta_bits": sgd},
        "adam": {"lr": ADAM_LR, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "theta_bits": adam},
    }
    with open(os.path.join(HERE, "updates.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# (b) Five end-to-end steps of every optimizer on the tiny Llama.
# ---------------------------------------------------------------------------------------------
E2E_STEPS, E2E_SEED, EPS = 5, 11, 1e-2
B, T, VOCAB = 2, 8, 512

CONFIGS = {
    "mezo": {"lr": 1e-3},
    "zo-sgd-mmt": {"lr": 1e-3, "momentum": 0.9},
    "zo-adam": {"lr": 1e-4, "beta1": 0.9, "beta2": 0.999, "adam_eps": 1e-8},
    "zo-sign": {"lr": 1e-4},
    "zo-cons": {"lr": 1e-2},
    "hizoo": {"lr": 1e-3, "hessian_smoothing": 0.1},
    # ZO-Muon as released (momentum after Newton-Schulz) and ZOTune's before-NS variant; quintic NS.
    "zo-muon": {"lr": 1e-3, "momentum": 0.9, "ns_steps": 5, "other_lr_ratio": 0.5},
    "zo-muon-before-ns": {"lr": 1e-3, "momentum": 0.9, "ns_steps": 5, "other_lr_ratio": 0.5},
}


def newton_schulz(G, steps, a=3.4445, b=-4.7750, c=2.0315):
    """The released ZO-Muon's zeropower_via_newtonschulz5 iteration, in float32: X = G/(|G|_F + 1e-7),
    transposed if rows > cols, then steps x {A = X X^T; X = aX + (bA + cA^2)X}."""
    X = G / (G.norm() + 1e-7)
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


def is_hidden_matrix(name, p):
    """ZO-Muon orthogonalises rank-2 weights that are not embeddings or the LM head."""
    return p.dim() == 2 and not any(k in name for k in ("embed", "lm_head"))


def load_model():
    return AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()


@torch.no_grad()
def lm_loss(model, ids):
    """Mean next-token cross-entropy over all B·(T-1) positions: f32 log-softmax, f64 mean."""
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
    lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return float((-lp.double()).mean())


def f32(x):
    return float(np.float32(x))


def run_optimizer(name, hp, zs, ids):
    """Steps t = 0..4 from the checkpoint. zs[t][tensor] is the step's z. Returns the per-step
    scalars and the final weights."""
    model = load_model()
    params = dict(model.named_parameters())
    lr = hp["lr"]
    L = lambda: lm_loss(model, ids)  # noqa: E731

    def move(direction, alpha):  # θ += alpha·direction, in place, every trainable tensor
        for n, p in params.items():
            p.add_(direction[n], alpha=alpha)

    def probe(direction):  # ℓ₊ at θ + εd, ℓ₋ at θ − εd, then back to θ (three in-place passes)
        move(direction, EPS)
        lp = L()
        move(direction, -2 * EPS)
        lm = L()
        move(direction, EPS)
        return lp, lm, f32((lp - lm) / (2 * EPS))

    torch_opt = None
    if name == "zo-sgd-mmt":
        torch_opt = torch.optim.SGD(list(params.values()), lr=lr, momentum=hp["momentum"], foreach=False)
    elif name == "zo-adam":
        torch_opt = torch.optim.Adam(list(params.values()), lr=lr, betas=(hp["beta1"], hp["beta2"]),
                                     eps=hp["adam_eps"], foreach=False)
    hessian = {n: torch.ones_like(p) for n, p in params.items()} if name == "hizoo" else None
    if name.startswith("zo-muon"):
        hidden = [p for n, p in params.items() if is_hidden_matrix(n, p)]
        others = [p for n, p in params.items() if not is_hidden_matrix(n, p)]
        # The released code's torch SGD with momentum; the non-matrix tensors at lr * ratio.
        torch_opt = torch.optim.SGD([{"params": hidden, "lr": lr}, {"params": others, "lr": lr * hp["other_lr_ratio"]}],
                                    lr=lr, momentum=hp["momentum"], foreach=False)
        before_buf = {n: torch.zeros_like(p) for n, p in params.items()}

    steps = []
    with torch.no_grad():
        for t in range(E2E_STEPS):
            z = zs[t]
            rec = {}
            if name in ("mezo", "zo-sgd-mmt", "zo-adam", "zo-sign"):
                lp, lm, g = probe(z)
                rec["forwards"] = [lp, lm]
                if name == "mezo":
                    move(z, -lr * g)
                elif name == "zo-sign":
                    move(z, -lr * float(np.sign(g)))
                else:
                    for n, p in params.items():
                        p.grad = z[n] * torch.tensor(g, dtype=torch.float32)
                    torch_opt.step()
            elif name == "zo-cons":
                l0 = L()
                lp, lm, g = probe(z)
                delta = lr * g  # Δ = η·g·z
                move(z, -delta)
                l1 = L()  # at θ − Δ
                move(z, 2 * delta)
                l2 = L()  # at θ + Δ
                # ZO-Bench's branches (ZO-FAMILY.md §4.4); c: θ ← θ + c·Δ
                if l1 > l0:
                    c = 0 if l0 < l2 else 1
                else:
                    c = -1 if l1 < l2 else 1
                if c == 0:
                    move(z, -delta)
                elif c == -1:
                    move(z, -2 * delta)
                rec["forwards"] = [l0, lp, lm, l1, l2]
                rec["choice"] = c
            elif name == "hizoo":
                alpha = hp["hessian_smoothing"]
                l0 = L()
                u = {n: z[n] / hessian[n].sqrt() for n in params}  # probe direction z/√H (H before the step)
                lp, lm, g = probe(u)
                dl = lp + lm - 2 * l0
                coef = alpha * abs(dl) / (2 * EPS * EPS)
                for n, p in params.items():
                    h = hessian[n]
                    h_new = (1 - alpha) * h + coef * h * z[n] * z[n]
                    hessian[n] = h_new
                    p.add_(z[n] / h_new.sqrt(), alpha=-lr * g)  # θ ← θ − η g z/√H_new
                rec["forwards"] = [l0, lp, lm]
                rec["curvature_diff"] = dl
            elif name == "zo-muon":
                lp, lm, g = probe(z)
                rec["forwards"] = [lp, lm]
                for n, p in params.items():  # grad = NS(g Z) for hidden matrices, g z for the rest
                    gz = z[n] * torch.tensor(g, dtype=torch.float32)
                    p.grad = newton_schulz(gz, hp["ns_steps"]) if is_hidden_matrix(n, p) else gz
                torch_opt.step()
            elif name == "zo-muon-before-ns":
                lp, lm, g = probe(z)
                rec["forwards"] = [lp, lm]
                mu = hp["momentum"]
                for n, p in params.items():
                    gz = z[n] * torch.tensor(g, dtype=torch.float32)
                    before_buf[n] = before_buf[n] * mu + gz
                    if is_hidden_matrix(n, p):  # M = mu M + g Z; W -= lr NS(M)
                        p.sub_(newton_schulz(before_buf[n], hp["ns_steps"]), alpha=lr)
                    else:  # the others: SGD momentum on g z at lr * ratio
                        p.sub_(before_buf[n], alpha=lr * hp["other_lr_ratio"])
            else:
                raise ValueError(name)
            rec["g"] = g
            rec["g_bits"] = f32_bits([g])[0]
            steps.append(rec)
    weights = {f"{name}/{n}": p.detach().clone().contiguous() for n, p in params.items()}
    return steps, weights


def make_e2e(zotune):
    zfile = os.path.join(HERE, "e2e_z.safetensors")
    zflat, meta = stream(zotune, zfile, "--model", MODEL, "--run-seed", str(E2E_SEED), "--steps", str(E2E_STEPS))
    shapes = {n: p.shape for n, p in load_model().named_parameters()}  # lm_head is untied: its own tensor
    names = list(shapes)
    assert len(zflat) == E2E_STEPS * len(names), "the stream's tensors are not the model's parameters"
    zs = [{n: zflat[f"step{t}/{n}"] for n in names} for t in range(E2E_STEPS)]
    for t in range(E2E_STEPS):
        for n in names:
            assert zs[t][n].shape == shapes[n] and zs[t][n].dtype == torch.float32, (t, n, zs[t][n].shape, shapes[n])

    ids = torch.from_numpy(np.random.default_rng(1).integers(0, VOCAB, size=(B, T)).astype(np.int64))
    doc = {
        "about": "five ZO steps per optimizer on Tests/ModelTests/Fixtures/models/llama from its checkpoint; "
                 "z of step t = tensors 'step{t}/<name>' of e2e_z.safetensors; final weights in "
                 "e2e_expected.safetensors as '<optimizer>/<name>'",
        "torch": torch.__version__,
        "run_seed": E2E_SEED, "steps": E2E_STEPS, "eps": EPS,
        "step_seeds": [int(meta[f"seed_step{t}"]) for t in range(E2E_STEPS)],
        "batch": {"batch": B, "length": T, "ids": ids.flatten().tolist()},
        "tensors": names,
        "optimizers": {},
    }
    expected = {}
    base = load_model()
    base_loss = lm_loss(base, ids)
    doc["base_loss"] = base_loss
    for name, hp in CONFIGS.items():
        steps, weights = run_optimizer(name, hp, zs, ids)
        doc["optimizers"][name] = {"hyper": {"eps": EPS, **hp}, "steps": steps}
        expected.update(weights)
        print(f"{name:11s} g = {[round(s['g'], 4) for s in steps]}"
              + (f" choices {[s['choice'] for s in steps]}" if name == "zo-cons" else ""))
    out = os.path.join(HERE, "e2e_expected.safetensors")
    save_file(expected, out, metadata={"torch": torch.__version__})
    os.chmod(out, 0o644)  # save_file creates it owner-only
    with open(os.path.join(HERE, "e2e.json"), "w") as f:
        json.dump(doc, f, indent=1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    zotune = os.path.abspath(sys.argv[1])
    make_updates(zotune)
    make_e2e(zotune)
    for f in sorted(os.listdir(HERE)):
        print(f"{os.path.getsize(os.path.join(HERE, f)):>9} {f}")


if __name__ == "__main__":
    main()
    record_versions(__file__)
