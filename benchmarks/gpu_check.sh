#!/usr/bin/env bash
# Target 5: one call, under 5 minutes on one H100 or H200, no network. Builds ~2,000 synthetic
# 240x240 images locally, runs them through the pipeline's own functions, trains seed_cnn for
# 3 epochs on CUDA with and without bf16, prints the real loop's images/s against the model's
# pure-compute ceiling on that GPU, and checks the runs learn. See benchmarks/gpu_check.py.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; runs from the repository root
#
# Needs the project installed (`python -m pip install -e .`). Without CUDA: one line, exit 2.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
PY="${PYTHON:-python}"
if ! "$PY" -c "import sneakers, torch" 2>/dev/null; then
    echo "error: cannot import sneakers and torch with $PY: run \`python -m pip install -e .\` in $(pwd) first" >&2
    exit 2
fi
timeout --foreground 290 "$PY" benchmarks/gpu_check.py "$@"
rc=$?
if [ "$rc" -eq 124 ]; then
    echo "error: gpu_check ran past 290 s and was stopped" >&2
fi
exit "$rc"
