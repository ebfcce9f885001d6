#!/usr/bin/env bash
# Learning evidence for the ZO optimizer family: each optimizer fine-tunes SmolLM2-135M-Instruct
# on the movie-review snippets (the demo's task and budget: 100 steps, batch 16, ε 1e-3, seed 0,
# data seed 0, dev = 200 examples every 25 steps, test = 500 at the best dev step), for each
# learning rate of its grid. The cells are one `zotune sweep` over runs/optimizers/base.json
# (docs/cli.md), so they are resumable cell by cell: a finished cell is not rerun, a started one
# resumes, and the script can be stopped and restarted. The table goes to bench/results/optimizers.md.
#   bench/optimizers.sh [cell ...]      cells are "optimizer:lr" or "optimizer+peft:lr" (peft: lora,
#                                       prefix, prompt at their MeZO ε); default: the whole grid below
# Takes about 10 minutes per 2-forward cell on 2 cores (zo-cons ~2.5x, hizoo ~1.5x; zo-muon with
# 5 NS iterations ~3x; jaguar-muon orthogonalising every 5 steps ~1.5x).
# Cells already in bench/results/optimizers_cells.json are in the table without a run directory.
# TASK=sst2 runs the same protocol on SST-2 from ../shared/data (DATA_DIR overrides) into
# runs/optimizers-sst2; its cells are cached in bench/results/optimizers_cells_sst2.json.
# Smaller runs (a check of the script, not a result): STEPS, EVAL_EVERY, EVAL_COUNT, TEST_COUNT
# override 100, 25, 200, 500 (cells with their own steps below keep them); THREADS sets --threads.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
bench_setup
data=runs/data
movie_data "$data"
task=${TASK:-movies}
if [[ $task != movies ]]; then data=${DATA_DIR:-../shared/data}; fi
model=$(smollm2_gguf)
Z=${ZOTUNE:-.build/release/zotune}  # ZOTUNE: a copy, so a rebuild mid-run cannot swap the binary
out=runs/optimizers
cache=bench/results/optimizers_cells.json
if [[ $task != movies ]]; then out=runs/optimizers-$task; cache=bench/results/optimizers_cells_$task.json; fi

# The grid, in the order cells run: MeZO at the demo's lr; each other optimizer at the step that
# matches MeZO's (MMT's effective lr is η/(1−μ), so 1e-5; Adam and Sign move each coordinate by
# about η, so 1e-5 and 1e-4), then larger steps.
grid=(mezo:1e-4 zo-sgd-mmt:1e-5 zo-adam:1e-5 zo-sign:1e-5 zo-adam:1e-4 zo-sign:1e-4 zo-cons:1e-4 hizoo:1e-4
      zo-adam:3e-4 zo-sign:3e-4 zo-sgd-mmt:3e-5 zo-adam:1e-3 zo-sign:1e-3 zo-cons:3e-4 hizoo:3e-4 mezo:3e-4
      jaguar-sign:1e-4 jaguar-sign:1e-3 jaguar-muon:1e-3 jaguar-muon:1e-2 zo-muon:1e-3 zo-muon:1e-4
      dizo:1e-4 zoop:1e-3 zoop:1e-2
      mezo+lora:1e-3 mezo+prefix:1e-2 mezo+prompt:1e-3 mezo+lora:1e-2 mezo+prefix:1e-3 mezo+prompt:1e-2
      sparse-mezo:2e-4 fzoo:3e-3 lowrank-spsa:2e-4 mezo-svrg:1e-5 lozo:1e-4 subzero:1e-4)
# Matrix optimizers at a CPU budget: ZO-Muon with 5 quintic iterations (the released code's 10
# double the NS cost; both leave σ in ≈[0.7, 1.13]), Jaguar-Muon re-orthogonalising every 5 steps.
# DiZO searches every 25 steps (the paper's K = 50…400 is for 4 000–20 000 steps; 25 gives four
# searches, each just before a dev evaluation). Zoop takes 3 forwards a step: 67 steps spend
# MeZO's 100 steps' forwards.
# The frontier optimizers (issue 32) spend MeZO's 200 forwards too, dev every ~50 forwards, at their
# defaults, at the lr whose per-coordinate step matches MeZO's η|g||z| (η 1e-4, |g| ≈ 9.3 mean, 14.7
# rms over the demo's MeZO run): sparse-mezo's g is measured over 20 % of θ (|g| ≈ √0.2 of MeZO's),
# so 1e-4/√0.2 ≈ 2e-4; fzoo moves each coordinate by η|Σ_k g_k u_k| ≈ η/√N (g_k normalised by σ),
# so 9.3e-4·√8 ≈ 3e-3 (N = 8, 9 forwards a step: 22 steps); lowrank-spsa averages q = 4 rank-1
# directions of unit-variance entries (η|g|/√q), so 2e-4 (8 forwards a step as one call: 25 steps);
# mezo-svrg's full step, the one that carries ḡ, moves η₁ = 10η (anchor_lr_scale), so η 1e-5
# (q 2, 4 anchor minibatches: full steps 8 forwards, the others 4: 33 steps = 200 forwards);
# lozo (U Vᵀ/√r, unit-variance entries) and subzero (√(mn)/r · U z0 Vᵀ, E‖E‖² = mn) perturb each
# coordinate as much as MeZO's z on average, so MeZO's 1e-4, at their defaults (q 1: 100 steps).
# Per-optimizer cell settings (a sweep cell's KEY=V: an option of the optimizer without its --, or
# a run-file key such as steps).
declare -A extra=([zo-muon]="ns-steps=5" [jaguar-muon]="orthogonalize-every=5" [dizo]="dizo-interval=25" [zoop]="steps=67"
                  [fzoo]="steps=22,eval-every=6" [lowrank-spsa]="steps=25,eval-every=6" [mezo-svrg]="steps=33,eval-every=8")
mkdir -p "$out"
cat > "$out/base.json" <<JSON
{"model": "$model", "task": "$task", "data-dir": "$data", "steps": ${STEPS:-100}, "eval-every": ${EVAL_EVERY:-25},
 "batch-size": 16, "eval-count": ${EVAL_COUNT:-200}, "test-count": ${TEST_COUNT:-500}, "seed": 0, "data-seed": 0,
 "optimizer": {"name": "mezo", "eps": 1e-3}}
JSON
sweep=()
for cell in "${@:-${grid[@]}}"; do
    opt=${cell%%:*} lr=${cell##*:}
    # The optimizer first: naming it resets its options to its defaults. PEFT cells keep the
    # adapter's own ε default (lora and prompt 1e-2, prefix 1e-1), as MeZO runs them.
    spec="optimizer=${opt%%+*},eps=1e-3"
    [[ $opt == *+* ]] && spec="optimizer=${opt%%+*},peft=${opt#*+}"
    spec+=",lr=$lr${extra[$opt]:+,${extra[$opt]}}"
    # A run directory of the script before the sweep (OPT-lrLR) carries on as its cell.
    [[ -d $out/$opt-lr$lr && ! -e $out/$spec ]] && mv "$out/$opt-lr$lr" "$out/$spec"
    if [[ ! -d $out/$spec ]] && python3 -c "import json,sys; sys.exit(0 if any(r['opt']=='$opt' and r['lr']=='$lr' for r in json.load(open('$cache'))) else 1)" 2>/dev/null; then
        echo "== $cell: in $cache"; continue
    fi
    sweep+=(--cell "$spec")
done
# Each cell's output goes to $out/<cell>.log. A failed cell fails the sweep after the other cells
# ran; the table is still written, then the script exits with the sweep's status.
status=0
if ((${#sweep[@]})); then
    $Z sweep --config "$out/base.json" "${sweep[@]}" --out "$out" ${THREADS:+--threads $THREADS} || status=$?
fi
python3 bench/optimizers_table.py runs/optimizers runs/optimizers-sst2 > bench/results/optimizers.md
cat bench/results/optimizers.md
exit $status
