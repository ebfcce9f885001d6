#!/usr/bin/env python3
"""PyTorch reference for ZOTune's frontier optimizers (fzoo, sparse-mezo, mezo-svrg, lowrank-spsa,
lozo, LOZO-M, subzero): torch, fed ZOTune's own directions (written by `zotune stream`), runs five
steps of each on the tiny Llama; FrontierReferenceTests holds ZOTune to the result.

The updates are written from the equations of shared/docs/ZO-FRONTIER.md (§2 FZOO, §5 MeZO-SVRG with
a shared z and a real anchor copy, §6 Sparse MeZO with the |θ| mask of the clean θ, §9.2 low-rank
SPSA, §3 LOZO/LOZO-M with ZOTune's aligned U and 1/√r, §4 SubZero's √(mn)/r·U z0 Vᵀ), in float32 with
in-place perturbations in the algorithm's order. They are not a port of the Swift code: e.g. the
low-rank probes here write θ ± εE_k into the weights one member at a time (ZOTune never writes θ
while probing), E_k is materialised (ZOTune folds it into GEMM factors), LOZO-M keeps N as m × r
(ZOTune its transpose), and MeZO-SVRG keeps θ itself (ZOTune rebuilds θ from the anchor every step).

What torch takes from ZOTune is only the random numbers: z, the Rademacher signs, the low-rank factors
of each step (LOZO: U_k of step t is A_k of step t, V_k of a window is B_k of the window's first step,
ZOTune's keying), and SubZero's U, V (ZOTune's QR of its Philox normals; torch checks UᵀU = I) and z0.
Each low-rank optimizer also runs one mutant (a window rule broken: `MUTANTS`), whose distance to the
true result the test requires to exceed its bound: the bound can see that mistake.

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
    # ν = 3: steps 0-2 share V of step 0, steps 3-4 V of step 3 (a window boundary inside the run).
    "lozo": {"lr": 1e-3, "directions": 2, "rank": 2, "window": 3, "momentum": 0},
    # ν = 2, β = 0.5: N re-projected onto the new V at steps 2 and 4.
    "lozo-m": {"lr": 1e-3, "directions": 2, "rank": 2, "window": 2, "momentum": 0.5},
    # F = 3: U, V of step 0's window for steps 0-2, refreshed at step 3.
    "subzero": {"lr": 1e-3, "directions": 2, "rank": 2, "refresh_every": 3},
}
# The mistake each mutant makes: V redrawn every step (LOZO's window ignored); N kept across a window
# boundary without the re-projection; U, V never refreshed.
MUTANTS = {"lozo": "fresh V every step", "lozo-m": "no re-projection", "subzero": "no refresh"}


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
    hp_f, hp_l, hp_s = CONFIGS["fzoo"], CONFIGS["lowrank-spsa"], CONFIGS["subzero"]
    # LOZO's q = 2, r = 2 directions are the first two of these (direction k's factors sit at the same
    # stream offset whatever q is).
    assert CONFIGS["lozo"]["rank"] == CONFIGS["lozo-m"]["rank"] == hp_l["rank"]
    assert max(CONFIGS["lozo"]["directions"], CONFIGS["lozo-m"]["directions"]) <= hp_l["directions"]
    subprocess.run([zotune, "stream", "--model", MODEL, "--run-seed", str(RUN_SEED), "--steps", str(STEPS),
                    "--rademacher", str(hp_f["probes"]), "--lowrank-directions", str(hp_l["directions"]),
                    "--lowrank-rank", str(hp_l["rank"]), "--out", out], check=True, stdout=subprocess.DEVNULL)
    sz = os.path.join(tmp, "subzero.safetensors")
    subprocess.run([zotune, "stream", "--model", MODEL, "--run-seed", str(RUN_SEED), "--steps", str(STEPS), "--subzero",
                    "--lowrank-directions", str(hp_s["directions"]), "--lowrank-rank", str(hp_s["rank"]), "--out", sz],
                   check=True, stdout=subprocess.DEVNULL)
    with safe_open(out, "pt") as f:
        meta = f.metadata()
    d = load_file(out)
    d.update({k: v for k, v in load_file(sz).items() if "/subzero/" in k})
    return d, meta


def run(name, hp, d, ids, search, mutant=False):
    model = load_model()
    params = dict(model.named_parameters())
    lr = hp["lr"]
    forwards = []

    def L(b=None):
        loss = lm_loss(model, ids if b is None else b)
        forwards.append(loss)
        return loss

    def probe(E, covered, q):
        """Low-rank probes: member 2k θ + εE_k, 2k + 1 θ − εE_k, written in place one at a time; g_k per k."""
        g = []
        for k in range(q):
            for n in covered:
                params[n].add_(E[k][n], alpha=EPS)
            lp = L()
            for n in covered:
                params[n].add_(E[k][n], alpha=-2 * EPS)
            lm = L()
            for n in covered:
                params[n].add_(E[k][n], alpha=EPS)
            g.append(f32((lp - lm) / (2 * EPS)))
        return g

    def descend(E, g, covered, q):
        for n in covered:  # W ← W − (η/q) Σ_k g_k E_k
            params[n].sub_(sum(g[k] * E[k][n] for k in range(q)), alpha=lr / q)

    steps = []
    anchor, gbar, zbar = None, None, None
    zN, Vold = {}, None
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
                g = probe(E, covered, q)
                descend(E, g, covered, q)
                rec.update(g=g, covered=covered)
            elif name in ("lozo", "lozo-m"):
                q, r, nu, beta = hp["directions"], hp["rank"], hp["window"], hp["momentum"]
                covered = sorted({k.split("/")[2] for k in d if k.startswith(f"step{t}/lowrank/")})
                w0 = t if (mutant and name == "lozo") else t // nu * nu
                U = [{n: d[f"step{t}/lowrank/{n}/A"][k * r:(k + 1) * r].T for n in covered} for k in range(q)]   # rows × r
                V = [{n: d[f"step{w0}/lowrank/{n}/B"][k * r:(k + 1) * r].T for n in covered} for k in range(q)]  # cols × r
                E = [{n: U[k][n] @ V[k][n].T / math.sqrt(r) for n in covered} for k in range(q)]
                g = probe(E, covered, q)
                if beta == 0:  # LOZO: W ← W − (η/q) Σ_k g_k U_k V_kᵀ/√r, U_k the probe's own
                    descend(E, g, covered, q)
                else:  # LOZO-M: N_k (rows × r), re-projected onto the new V at a window's first step
                    gain = 0.0
                    for k in range(q):
                        for n in covered:
                            cols = V[k][n].shape[0]
                            if t == 0:
                                zN[(k, n)] = g[k] * U[k][n]
                                continue
                            if t % nu == 0 and not mutant:
                                C = Vold[k][n].T @ V[k][n] / cols  # r × r
                                gain = max(gain, float(C.abs().sum(0).max()))
                                zN[(k, n)] = zN[(k, n)] @ C
                            zN[(k, n)] = beta * zN[(k, n)] + (1 - beta) * g[k] * U[k][n]
                    for n in covered:  # W ← W − (η/q) Σ_k N_k V_kᵀ/√r
                        params[n].sub_(sum(zN[(k, n)] @ V[k][n].T for k in range(q)) / math.sqrt(r), alpha=lr / q)
                    if t % nu == 0 and t > 0:
                        rec["gain"] = gain  # max column sum of |V_oldᵀV_new|/cols: what re-projection can amplify
                Vold = V
                rec.update(g=g)
            elif name == "subzero":
                q, r, F = hp["directions"], hp["rank"], hp["refresh_every"]
                covered = sorted({k.split("/")[2] for k in d if k.startswith(f"step{t}/subzero/")})
                w0 = 0 if mutant else t // F * F
                E, biggest = [], 0.0
                for k in range(q):  # E_k = √(mn)/r · U z0_k Vᵀ
                    Ek = {}
                    for n in covered:
                        U, V = d[f"step{w0}/subzero/{n}/U"], d[f"step{w0}/subzero/{n}/V"]
                        for B in (U, V):
                            assert (B.double().T @ B.double() - torch.eye(r, dtype=torch.float64)).abs().max() < 1e-6, "not orthonormal"
                        (m_, n_), z0 = params[n].shape, d[f"step{t}/subzero/{n}/z0"][k * r:(k + 1) * r]
                        Ek[n] = (math.sqrt(m_ * n_) / r) * (U @ z0 @ V.T)
                        biggest = max(biggest, float(Ek[n].abs().max()))
                    E.append(Ek)
                g = probe(E, covered, q)
                descend(E, g, covered, q)
                rec.update(g=g, max_direction=biggest)  # max |E_k| entry: the test's θ bound uses it
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
                 "directions of `zotune stream --run-seed 11` (normal z, FZOO's Rademacher probes, low-rank factors, SubZero's "
                 "bases and z0); final weights in frontier_expected.safetensors as '<optimizer>/<name>' (lozo, lozo-m, subzero: "
                 "the linear matrices only, the rest does not move)",
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
    covered = {k.split("/")[2] for k in d if k.startswith("step0/lowrank/")}
    for name, hp in CONFIGS.items():
        steps, weights = run(name, hp, d, ids, search)
        doc["optimizers"][name] = {"hyper": {"eps": EPS, **hp}, "steps": steps}
        if name in MUTANTS:  # only the linear matrices move: the test holds the rest to their start bit for bit
            weights = {k: v for k, v in weights.items() if k.split("/", 1)[1] in covered}
        expected.update(weights)
        print(f"{name:13s} g = {[[round(x, 4) for x in s['g']] for s in steps]}")
        if name in MUTANTS:
            _, wrong = run(name, hp, d, ids, search, mutant=True)
            gap = max(float((wrong[k] - weights[k]).abs().max()) for k in weights)
            doc["optimizers"][name]["mutant"] = {"what": MUTANTS[name], "max_abs_theta_diff": gap}
            print(f"{'':13s} mutant ({MUTANTS[name]}): max |Δθ| = {gap:.3g}")
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
