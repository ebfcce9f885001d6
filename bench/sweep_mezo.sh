#!/usr/bin/env bash
# An lr sweep of MeZO on the movie-review snippets with `zotune sweep`: SmolLM2-135M-Instruct
# (full tuning, f32), batch 16, ε 1e-3, seed 0, data seed 0, dev = 100 examples every 10 steps,
# test = 200 at the best dev step; STEPS (default 50) steps per cell, LRS (default 1e-4,3e-4,1e-3).
# Resumable: stop it and run it again. Table, JSON and plot go to bench/results/sweep_mezo_movies.*
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
bench_setup
data=runs/data
movie_data "$data"
out=runs/sweep-mezo-movies
mkdir -p "$out"
cat > "$out/base.json" <<JSON
{"model": "$(smollm2_gguf)", "task": "movies", "data-dir": "$data", "steps": ${STEPS:-50}, "batch-size": 16,
 "eval-every": 10, "eval-count": 100, "test-count": 200, "seed": 0, "data-seed": 0,
 "optimizer": {"name": "mezo", "eps": 1e-3}}
JSON
.build/release/zotune sweep --config "$out/base.json" --grid "lr=${LRS:-1e-4,3e-4,1e-3}" --out "$out" ${THREADS:+--threads $THREADS}
for f in sweep.md sweep.json dev.svg; do cp "$out/$f" "bench/results/sweep_mezo_movies.${f##*.}"; done
