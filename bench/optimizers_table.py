"""bench/results/optimizers.md from the cells of bench/optimizers.sh's sweep: each cell's run
directory (summary.json and metrics.jsonl, as `zotune train` writes them; the cell's name, e.g.
"optimizer=zo-adam,eps=1e-3,lr=1e-4", gives its optimizer, adapter and lr): one row per cell, the
best cell per optimizer marked.

Finished cells are also kept in bench/results/optimizers_cells.json (run directories are not
committed): a cell found on disk replaces its cached row, the others come from the cache, so the
table survives a fresh clone and grows cell by cell. Everything hand-written (notes, runs made
outside the script) lives in bench/results/optimizers_notes.md, printed below the table, so a
regeneration never loses it."""
import json
import os
import sys


here = os.path.dirname(os.path.abspath(__file__))
notes_path = os.path.join(here, "results", "optimizers_notes.md")
ORDER = ["mezo", "zo-sgd-mmt", "zo-adam", "zo-sign", "zo-cons", "hizoo", "zo-muon", "jaguar-sign", "jaguar-muon", "dizo", "zoop",
         "sparse-mezo", "fzoo", "lowrank-spsa", "mezo-svrg",
         "mezo+lora", "mezo+prefix", "mezo+prompt"]
# Mean forwards per step of runs whose summary.json predates the field: the optimizer's ordinary count.
FORWARDS = {"zo-cons": 5, "hizoo": 3, "zoop": 3, "fzoo": 9, "lowrank-spsa": 8, "mezo-svrg": 6}


def settings(name):
    """A sweep cell's directory name as its settings: "optimizer=mezo,peft=lora,lr=1e-3" → dict
    (`\\,` is a comma inside a value, `\\\\` a backslash, as `zotune sweep --cell` writes them)."""
    items, item, escaped = [], "", False
    for c in name:
        if escaped:
            item += c if c in ",\\" else "\\" + c
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            items.append(item)
            item = ""
        else:
            item += c
    items.append(item)
    return dict(i.split("=", 1) for i in items if "=" in i)


def cells(root, cache_path):
    """Rows of the finished cells under root, merged with the cache (which is rewritten)."""
    rows = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        d = os.path.join(root, name)
        s_path = os.path.join(d, "summary.json")
        cell = settings(name)
        if not os.path.isfile(s_path) or "optimizer" not in cell or "lr" not in cell:
            continue
        s = json.load(open(s_path))
        peft = cell.get("peft", "none")
        opt, lr = cell["optimizer"] + ("" if peft == "none" else "+" + peft), cell["lr"]
        steps = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")) if l.strip()]
        losses = [m["loss"] for m in steps if "loss" in m]
        dev = [m["dev_accuracy"] for m in steps if "dev_accuracy" in m]
        # Runs before summary.json said "inference_peak_excludes_state" measured the inference-only
        # forward with the optimizer state already allocated: take it out here.
        inference = s["inference_peak_bytes"]
        if not s.get("inference_peak_excludes_state"):
            inference -= s.get("state_bytes", 0)
        fps = s.get("forwards_per_step", FORWARDS.get(opt, 2))
        rows.append(dict(opt=opt, lr=lr, before=s["dev_before"], after=s["dev_after"], best=max(dev), best_step=s["best_step"],
                         test=s["test"], s_step=s["seconds"] / len(losses) if losses else float("nan"),
                         ratio=s["zo_peak_bytes"] / inference, state=s.get("state_bytes", 0) / 2**20, source="this checkout",
                         steps=len(losses), forwards=round(fps * len(losses))))
    cached = json.load(open(cache_path)) if os.path.isfile(cache_path) else []
    fresh = {(r["opt"], r["lr"]) for r in rows}
    rows += [r for r in cached if (r["opt"], r["lr"]) not in fresh]
    if rows:
        with open(cache_path, "w") as f:
            json.dump([{k: r[k] for k in r} for r in rows], f, indent=1)
    for r in rows:
        r.setdefault("steps", 100)
        r.setdefault("forwards", round(FORWARDS.get(r["opt"], 2) * r["steps"]))
    return rows


def table(rows):
    best = {}
    for r in rows:
        if r["opt"] not in best or r["best"] > best[r["opt"]]["best"]:
            best[r["opt"]] = r
    print("| optimizer | lr | steps | forwards | dev zero-shot | dev after | best dev (step) | test | s/step | memory × inference | state MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (ORDER.index(r["opt"]) if r["opt"] in ORDER else 99, float(r["lr"]))):
        star = " ★" if best[r["opt"]] is r else ""
        print(f"| {r['opt']}{star} | {r['lr']} | {r['steps']} | {r['forwards']} | {r['before']:.3f} | {r['after']:.3f} | "
              f"{r['best']:.3f} ({r['best_step']}) | {r['test']:.3f} | {r['s_step']:.2f} | {r['ratio']:.3f} | {r['state']:.0f} |")
    print()
    mezo = best.get("mezo")
    for o in ORDER:
        if o not in best:
            continue
        r = best[o]
        # A PEFT row's "dev zero-shot" is the model with the adapter at its initialisation (prefix
        # and prompt change the outputs from the start): compare with the plain base too.
        zero = max(r["before"], mezo["before"]) if mezo and "+" in o else r["before"]
        verdict = "beats zero-shot" if r["best"] > zero else "does NOT beat zero-shot"
        if mezo and "+" in o:
            verdict += f" (plain base {mezo['before']:.3f}, adapter at init {r['before']:.3f})"
        vs = ""
        if mezo and o != "mezo":
            vs = "; " + ("beats" if r["test"] > mezo["test"] else "does not beat") + f" MeZO on test ({r['test']:.3f} vs {mezo['test']:.3f})"
        print(f"- {o}: best dev {r['best']:.3f} vs zero-shot {zero:.3f}: {verdict}{vs}.")


movies = cells(sys.argv[1], os.path.join(here, "results", "optimizers_cells.json"))
sst2 = cells(sys.argv[2] if len(sys.argv) > 2 else "", os.path.join(here, "results", "optimizers_cells_sst2.json"))
print("# ZO optimizers on movie-review snippets and SST-2 (SmolLM2-135M-Instruct, CPU)\n")
print("Generated by `bench/optimizers.sh` (`bench/optimizers_table.py`). Each cell: batch 16, ε 1e-3, "
      "constant lr, seed 0, data seed 0, 100 steps (zoop: 67, the same forwards); optimizer+peft rows train an adapter "
      "over the frozen f32 base at the adapter's MeZO ε (lora and prompt 1e-2, prefix 1e-1: docs/peft.md); dev = 200 examples every 25 steps "
      "(accuracy before training is zero-shot), test = 500 examples at the best dev step. forwards = training forwards "
      "(DiZO's search forwards included). s/step includes the dev evaluations (4 × 200 examples). "
      "Memory = the ledger's training-step peak over an inference-only forward of the same batches; "
      "state = optimizer state (f32; DiZO: θ⁰ and the search start of the projected tensors). ★ = best lr of that optimizer.\n")
print("## Movie-review snippets (vaderSentiment)\n")
table(movies)
if sst2:
    print("\n## SST-2 (GLUE files in ../shared/data/SST-2; `TASK=sst2 bench/optimizers.sh`)\n")
    table(sst2)
if os.path.isfile(notes_path):
    print()
    print(open(notes_path).read().rstrip())
