#!/usr/bin/env bash
# CPU forward of a model, ZOTune vs transformers/torch, same machine, same thread count, one run.
#   bench/forward.sh MODEL.gguf [BATCH] [SEQ]      (default 16 × 64)
# Needs the reference venv (PYTHON, default .venv-ref/bin/python as Tests/setup.sh installs it, else python3) with torch CPU
# and transformers; ZOTune is built in release here.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/forward.sh MODEL.gguf [BATCH] [SEQ]}
batch=${2:-16}; seq=${3:-64}
threads=${ZOTUNE_NUM_THREADS:-$(nproc)}
py=${PYTHON:-$( [ -x .venv-ref/bin/python ] && echo .venv-ref/bin/python || echo python3)}
swift build -c release --product zotune >/dev/null
z=$(.build/release/zotune bench forward --model "$model" --batch-size "$batch" --seq-len "$seq" --threads "$threads" --device cpu --json)
t=$("$py" bench/forward_torch.py --model "$model" --batch-size "$batch" --seq-len "$seq" --threads "$threads")
"$py" - "$z" "$t" "$batch" "$seq" "$threads" <<'PY'
import json, sys
z, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
b, s, th = sys.argv[3:6]
print(f"forward, batch {b} x {s} tokens, {th} threads, f32")
print(f"{'':10}{'forward s':>12}{'tokens/s':>12}{'peak RSS MiB':>14}")
for name, r in (("ZOTune", z), ("torch", t)):
    print(f"{name:10}{r['forward_s']:12.3f}{r['tokens_per_s']:12.0f}{r['peak_rss_bytes'] / 2**20:14.0f}")
print(f"ZOTune / torch tokens/s: {z['tokens_per_s'] / t['tokens_per_s']:.2f}x")
PY
