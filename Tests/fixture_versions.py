"""Shared by the fixture scripts (Tests/*/Fixtures): record which Python and package versions
wrote a fixture, beside the script that wrote it."""
import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version


def record_versions(script):
    """Writes <script>.versions.json beside `script` (pass __file__): the Python and package
    versions that wrote the fixtures (Tests/setup.sh pins the reference venv; the tests'
    tolerances were measured on it)."""
    out = {"script": os.path.basename(script), "python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "safetensors", "tokenizers", "accelerate", "numpy", "gguf"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    with open(os.path.splitext(os.path.abspath(script))[0] + ".versions.json", "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
