#!/usr/bin/env python3
"""Table and plot of bench/pretrain_seed000.sh (seed 000's layer-wise pre-training, its Figure 6):
held-out loss (ln perplexity) against training steps of the whole protocol — the FO embedding phase
first (2 epochs), then one epoch per layer for each arm — with full-model FO from the seeded init as
the third curve. Prints the Markdown table; writes the SVG given by --svg (hand-written, no plotting
library).

usage: pretrain_seed000_table.py RUNS_DIR --svg bench/results/pretrain_seed000.svg > bench/results/pretrain_seed000.md
"""
import argparse
import glob
import json
import math
import os

# (cell, label, colour, starts after the embedding phase); seed's colours: FO yellow, ZO blue, full FO purple.
ARMS = [("zo", "ZO (MeZO), layer-wise", "#1f5fbf", True),
        ("zo-mmt", "ZO-SGD-MMT, layer-wise", "#2ca02c", True),
        ("fo-layer", "FO (Adam), layer-wise", "#e0a800", True),
        ("fo-full", "FO (Adam), full model", "#8e44ad", False)]


def load(d):
    m = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")) if l.strip()]
    return m, json.load(open(os.path.join(d, "summary.json")))


def evals(metrics):
    """[(step, held-out loss)] at every evaluation (a null perplexity, a diverged one, is skipped)."""
    return [(o["step"], math.log(o["dev_perplexity"])) for o in metrics if o.get("dev_perplexity")]


def at(pts, step):
    return next((l for s, l in pts if s == step), None)


def fmt(v):
    return "—" if v is None else f"{v:.3f}"


def zo_lr(d):
    """A ZOTune run's lr, from its trajectory header (the schedule's peak)."""
    b = open(os.path.join(d, "trajectory.zot"), "rb").read()
    n = int.from_bytes(b[8:12], "little")
    return json.loads(b[12:12 + n])["run"]["schedule"]["lr"]


def seconds(metrics):
    return max((o.get("train_seconds", 0.0) for o in metrics), default=0.0)


def svg(curves, E, layers, lo, hi, width=820, height=380):
    left, right, top, bottom = 60, 210, 30, height - 40
    xmax = (2 + layers) * E
    x = lambda v: left + (width - left - right) * v / xmax
    y = lambda v: bottom - (bottom - top) * (v - lo) / (hi - lo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="18" font-size="13">Layer-wise pre-training (seed 000, Figure 6): held-out loss (ln perplexity) vs training steps</text>',
           f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#444"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#444"/>']
    for f in (0, 0.25, 0.5, 0.75, 1):
        v = lo + (hi - lo) * f
        out.append(f'<text x="6" y="{y(v) + 4:.1f}" fill="#444">{v:.2f}</text>')
    names = ["embedding (FO)"] + [f"layer {k}" for k in range(layers)]
    for b, name in enumerate(names):
        s0, s1 = (0, 2 * E) if b == 0 else ((b + 1) * E, (b + 2) * E)
        if b:
            out.append(f'<line x1="{x(s0):.1f}" y1="{top}" x2="{x(s0):.1f}" y2="{bottom}" stroke="#bbb" stroke-dasharray="3,3"/>')
        out.append(f'<text x="{(x(s0) + x(s1)) / 2:.1f}" y="{bottom + 14}" fill="#444" text-anchor="middle" font-size="10">{name}</text>')
        out.append(f'<text x="{x(s1):.1f}" y="{bottom + 28}" fill="#888" text-anchor="middle" font-size="10">{s1}</text>')
    for i, (label, colour, pts, dash) in enumerate(curves):
        p = " ".join(f"{x(s):.1f},{y(l):.1f}" for s, l in pts)
        extra = ' stroke-dasharray="5,3"' if dash else ""
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{extra} points="{p}"/>')
        out.append(f'<text x="{width - right + 8}" y="{top + 12 + 16 * i}" fill="{colour}">{label}</text>')
    out.append(f'<text x="{width - right + 8}" y="{bottom}" fill="#888" font-size="10">steps (batches of windows)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--svg", required=True)
    a = ap.parse_args()
    R = a.runs
    if not os.path.exists(os.path.join(R, "fo-embed", "summary.json")):
        raise SystemExit(f"{R}/fo-embed: not run yet (bench/pretrain_seed000.sh fo-embed)")
    emb_m, emb_s = load(os.path.join(R, "fo-embed"))
    E = emb_s["epoch_steps"]
    layers = 6
    emb = evals(emb_m)
    init_loss = math.log(emb_s["perplexity_before"])
    emb_loss = emb[-1][1]
    curves, rows = [("FO (Adam), embedding block", "#b8860b", emb, False)], []
    for cell, label, colour, after in ARMS:
        d = os.path.join(R, cell)
        if not os.path.exists(os.path.join(d, "summary.json")):
            continue
        m, s = load(d)
        pts = evals(m)
        off = 2 * E if after else 0
        curves.append((label, colour, [(st + off, l) for st, l in pts], False))
        rows.append((cell, label, m, s, pts))
    vr = sorted(glob.glob(os.path.join(R, "zo-q*", "summary.json")))
    for p in vr:
        d = os.path.dirname(p)
        m, s = load(d)
        pts = evals(m)
        curves.append((f"ZO, {os.path.basename(d)[4:]} directions (n-SPSA)", "#d62728", [(st + 2 * E, l) for st, l in pts], True))
    grid = []
    for p in sorted(glob.glob(os.path.join(R, "zo-lr-*", "summary.json")), key=lambda p: float(p.split("zo-lr-")[1].split("/")[0])):
        d = os.path.dirname(p)
        m, s = load(d)
        grid.append((d.split("zo-lr-")[1], m, s, evals(m)))
    losses = [l for _, _, pts, _ in curves for _, l in pts]
    lo, hi = min(losses), max(losses)
    pad = 0.04 * (hi - lo) or 0.1
    with open(a.svg, "w") as f:
        f.write(svg(curves, E, layers, lo - pad, hi + pad))

    print("# Layer-wise pre-training as seed 000 runs it (bench/pretrain_seed000.sh)\n")
    print(f"Generated by `bench/pretrain_seed000.sh` (`bench/pretrain_seed000_table.py`); setup and reading in "
          f"`bench/results/pretrain_seed000_notes.md`; plot `{a.svg}` (the seed's Figure 6). "
          f"Model: Llama 6 layers, hidden 256, 4 heads, MLP 688, tied, 49 152 ids: 17.33 M parameters (embedding 12.58 M, "
          f"0.79 M per layer). One epoch = {E} steps of {emb_s['batch']} windows of {emb_s['seq_len']} tokens "
          f"({E * emb_s['batch']} windows, {E * emb_s['batch'] * emb_s['seq_len']} tokens; the seed's full epoch is 5 098 windows). "
          f"Held-out loss = ln perplexity; seeded init {init_loss:.3f}. Seconds: training time only, on 2 shared cores.\n")
    print(f"Embedding block (FO Adam, lr {emb_s['lr']:g}, {emb_s['steps']} steps = 2 epochs, {emb_s['trained_parameters']} parameters): "
          f"held-out loss {init_loss:.3f} -> {emb_loss:.3f} in {emb_s['train_seconds']:.0f} s. Every layer-wise arm starts from this checkpoint.\n")
    rows_full = next((r[4] for r in rows if r[0] == "fo-full"), None)
    head = " | ".join(f"L{k}" for k in range(layers))
    print(f"| arm | lr | steps | passes | train s | start | {head} | final |")
    print("|---|---|---|---|---|---|" + "---|" * layers + "---|")
    for cell, label, m, s, pts in rows:
        steps = max(o["step"] for o in m)
        if cell.startswith("fo"):
            passes = f"{steps} fwd + {steps} bwd"
        else:
            passes = f"{steps * s['forwards_per_step']} fwd"
        # Full FO: its loss at the same protocol step (2 embedding epochs + k + 1 layer epochs).
        per = [at(pts, (k + 1) * E) for k in range(layers)] if cell != "fo-full" else [at(pts, (k + 3) * E) for k in range(layers)]
        cells = " | ".join(fmt(v) for v in per)
        lr = s["lr"] if cell.startswith("fo") else zo_lr(os.path.join(R, cell))
        print(f"| {label} | {lr:.3g} | {steps} | {passes} | {seconds(m):.0f} | {pts[0][1]:.3f} | {cells} | {pts[-1][1]:.3f} |")
    print()
    print("L*k* = held-out loss after layer *k*'s epoch. ZO passes are forwards only (2 per step for MeZO and ZO-SGD-MMT); "
          "an FO step is one forward and one backward (≈ 3 forwards of work). Full FO trains every parameter from the seeded init "
          f"for {2 + layers} epochs (the embedding phase's 2 plus one per layer): its start is the seeded init's loss, its L*k* column "
          f"its loss after as many steps as the layer-wise arms have taken at the end of layer *k* ({3 * E}, {4 * E}, …); "
          f"after the embedding phase's {2 * E} steps it stood at {fmt(at(rows_full, 2 * E)) if rows_full else '—'}.\n")
    if grid:
        print(f"ZO lr grid on the first ZO block (layer 0, one epoch = {E} steps, MeZO, ε 1e-3):\n")
        print("| lr | held-out loss after layer 0 | best after step 0 | forwards | train s |")
        print("|---|---|---|---|---|")
        for lr, m, s, pts in grid:
            print(f"| {lr} | {pts[-1][1]:.3f} | {min(l for st, l in pts if st > 0):.3f} | {max(o['step'] for o in m) * s['forwards_per_step']} | {seconds(m):.0f} |")
        print()
    if vr:
        zo = next((r for r in rows if r[0] == "zo"), None)
        print("Variance reduced on the first ZO block (the same lr and steps, n directions averaged per step):\n")
        print("| run | directions | held-out loss after layer 0 | forwards | train s |")
        print("|---|---|---|---|---|")
        if zo:
            zm = [o for o in zo[2] if o["step"] <= E]
            print(f"| zo (MeZO) | 1 | {fmt(at(zo[4], E))} | {E * zo[3]['forwards_per_step']} | {seconds(zm):.0f} |")
        for p in vr:
            d = os.path.dirname(p)
            m, s = load(d)
            pts = evals(m)
            print(f"| {os.path.basename(d)} | {s['forwards_per_step'] // 2} | {pts[-1][1]:.3f} | {max(o['step'] for o in m) * s['forwards_per_step']} | {seconds(m):.0f} |")
        print()
    checks = []
    for cell, label, m, s, pts in rows + [(g[0], "", g[1], g[2], g[3]) for g in grid]:
        if cell not in ("fo-full",):
            checks.append(abs(pts[0][1] - emb_loss))
    if checks:
        print(f"Check: the step-0 held-out loss of every layer-wise run (ZOTune's from the checkpoint PyTorch wrote, and the FO arm's) "
              f"differs from the FO embedding phase's last evaluation by at most {max(checks):.1e}: the same weights and held-out windows.")

if __name__ == "__main__":
    main()
