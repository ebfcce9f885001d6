#!/usr/bin/env bash
# Process peak RSS of a MeZO step vs an inference-only forward of the same batch, each in its own
# process under /usr/bin/time -v, next to the ledger's figures.
#   bench/memory.sh MODEL [BATCH] [SEQ]        (default 16 × 64)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/memory.sh MODEL [BATCH] [SEQ]}
batch=${2:-16}; seq=${3:-64}
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
swift build -c release --product zotune >/dev/null
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}'; }
inf=$(rss .build/release/zotune memory --model "$model" --batch-size "$batch" --seq-len "$seq" --phase inference --device cpu)
zo=$(rss .build/release/zotune memory --model "$model" --batch-size "$batch" --seq-len "$seq" --phase zo --device cpu)
echo "batch $batch × $seq tokens"
echo "process peak RSS: inference-only $((inf / 1024)) MiB, MeZO step $((zo / 1024)) MiB, ratio $(awk "BEGIN {printf \"%.3f\", $zo / $inf}")"
.build/release/zotune memory --model "$model" --batch-size "$batch" --seq-len "$seq" --device cpu 2>/dev/null
