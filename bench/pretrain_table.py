#!/usr/bin/env python3
"""Table and plot of bench/pretrain.sh: held-out loss (ln perplexity) of each cell against training
forwards and training seconds. Writes the SVG given by --svg and prints the Markdown table.

usage: pretrain_table.py RUNS_DIR --svg bench/results/pretrain.svg > bench/results/pretrain.md
"""
import argparse
import json
import math
import os

CELLS = [("zo", "full ZO (MeZO)"), ("block-seq", "block-wise ZO (a): sequential"),
         ("block-step", "block-wise ZO (b): every block every step"), ("fo-adam", "first-order Adam (PyTorch reference)")]
COLORS = {"zo": "#1f77b4", "block-seq": "#2ca02c", "block-step": "#ff7f0e", "fo-adam": "#7f7f7f"}


def load(d):
    m = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")) if l.strip()]
    s = json.load(open(os.path.join(d, "summary.json")))
    return m, s


def evals(metrics):
    """(step, train_seconds, held-out loss) at every evaluation; the step-0 evaluation at 0 s."""
    seconds = {0: 0.0}
    out = []
    for o in metrics:
        if "train_seconds" in o:
            seconds[o["step"]] = o["train_seconds"]
        if o.get("dev_perplexity") is not None:   # null: a diverged evaluation (infinite perplexity)
            out.append((o["step"], seconds.get(o["step"], 0.0), math.log(o["dev_perplexity"])))
    return out


def svg(series, uniform=None, width=760, height=300):
    """Two panels: held-out loss vs forwards (ZO cells) and vs training seconds (all cells). Each
    panel scales to its own curves, so the ZO cells' small differences stay visible; a dashed line
    marks the uniform predictor's loss ln(vocab)."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{2 * height + 40}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']

    def panel(top, key, label, cells):
        losses = [p["loss"] for c in cells for p in series[c]["xs"]] + ([uniform] if uniform else [])
        lo, hi = min(losses), max(losses)
        pad = (hi - lo) * 0.05 or 0.1
        lo, hi = lo - pad, hi + pad
        left, right, bottom = 60, 170, top + height - 30
        xmax = max(p[key] for c in cells for p in series[c]["xs"]) or 1
        out.append(f'<text x="{left}" y="{top + 14}" font-size="13">held-out loss (ln perplexity) vs {label}</text>')
        out.append(f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#444"/>')
        out.append(f'<line x1="{left}" y1="{top + 24}" x2="{left}" y2="{bottom}" stroke="#444"/>')
        x = lambda v: left + (width - left - right) * v / xmax
        y = lambda v: bottom - (bottom - top - 24) * (v - lo) / (hi - lo)
        for f in (0, 0.25, 0.5, 0.75, 1):
            v = lo + (hi - lo) * f
            out.append(f'<text x="4" y="{y(v) + 4:.1f}" fill="#444">{v:.3f}</text>')
        if uniform:
            out.append(f'<line x1="{left}" y1="{y(uniform):.1f}" x2="{width - right}" y2="{y(uniform):.1f}" stroke="#999" stroke-dasharray="4,4"/>')
            out.append(f'<text x="{width - right + 8}" y="{y(uniform) + 4:.1f}" fill="#999">uniform</text>')
        out.append(f'<text x="{width - right - 80}" y="{bottom + 16}" fill="#444">{label} {xmax:.0f}</text>')
        for i, c in enumerate(cells):
            pts = " ".join(f"{x(p[key]):.1f},{y(p['loss']):.1f}" for p in series[c]["xs"])
            out.append(f'<polyline fill="none" stroke="{COLORS[c]}" stroke-width="2" points="{pts}"/>')
            out.append(f'<text x="{width - right + 8}" y="{top + 40 + 16 * i}" fill="{COLORS[c]}">{c}</text>')

    zo_cells = [c for c in series if c != "fo-adam"]
    if zo_cells:
        panel(10, "forwards", "training forwards", zo_cells)
    panel(20 + height, "seconds", "training seconds", list(series))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def vocab_size(runs):
    """The model's vocabulary, from the init checkpoint any cell wrote (None if none did)."""
    for cell, _ in CELLS:
        c = os.path.join(runs, cell, "init", "config.json")
        if os.path.exists(c):
            return json.load(open(c)).get("vocab_size")
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--svg", required=True)
    a = ap.parse_args()
    series, rows = {}, []
    for cell, title in CELLS:
        d = os.path.join(a.runs, cell)
        if not os.path.exists(os.path.join(d, "summary.json")):
            continue
        metrics, summary = load(d)
        fps = summary.get("forwards_per_step")
        pts = evals(metrics)
        xs = [{"forwards": (step * fps if fps else 0), "seconds": sec, "loss": loss} for step, sec, loss in pts]
        series[cell] = {"points": pts, "xs": xs}
        last = [o for o in metrics if "train_seconds" in o][-1]
        rows.append((cell, title, summary, last, pts, fps))
    vocab = vocab_size(a.runs)
    uniform = math.log(vocab) if vocab else None
    with open(a.svg, "w") as f:
        f.write(svg(series, uniform))
    t_zo = next((r[3]["train_seconds"] for r in rows if r[0] == "zo"), None)
    print("# Pre-training a Llama from scratch with ZO (bench/pretrain.sh)\n")
    print("Generated by `bench/pretrain.sh` (`bench/pretrain_table.py`); the setup and the reading are in "
          "`bench/results/pretrain_notes.md`. Held-out loss = ln of the held-out perplexity (mean next-token NLL). "
          "Plot: `bench/results/pretrain.svg`." +
          (f" The uniform predictor over the {vocab} ids scores ln {vocab} = {uniform:.3f}." if uniform else "") + "\n")
    print("| cell | optimizer | steps | forwards | train s | held-out loss before | after | best | loss at ZO's time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cell, title, s, last, pts, fps in rows:
        at = "—"
        if t_zo is not None:
            within = [p for p in pts if p[1] <= t_zo * 1.02]
            at = f"{within[-1][2]:.3f}" if within else "—"
        fw = f"{round(last['step'] * fps)}" if fps else "— (3 passes/step)"
        print(f"| {cell} | {title} | {last['step']} | {fw} | {last['train_seconds']:.0f} | {math.log(s['perplexity_before']):.3f} | "
              f"{pts[-1][2]:.3f} | {min(p[2] for p in pts):.3f} | {at} |")


if __name__ == "__main__":
    main()
