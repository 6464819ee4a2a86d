#!/usr/bin/env bash
# Target 5: one call, under 5 minutes on one H100 or H200, no network. Builds ~2,000 synthetic
# 240x240 images locally, runs them through the pipeline's own functions, trains seed_cnn for
# 10 epochs on CUDA in bf16 (train split kept on the GPU as uint8, batches cut there), prints the
# real loop's images/s against the model's bf16 compute ceiling on that GPU (and a 2-epoch fp32
# comparison), the seconds of each phase, and checks the run learns. See benchmarks/gpu_check.py.
# With 2 or more GPUs it then runs benchmarks/ddp_check.py on 2 of them under torchrun (NCCL):
# up to 4 more minutes.
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
# With 2 or more GPUs: the same train() under torchrun on 2 of them (DDP over NCCL).
gpus=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU")
if [ "$rc" -eq 0 ] && [ "$gpus" -ge 2 ]; then
    timeout --foreground 240 "$PY" -m torch.distributed.run --standalone --nproc-per-node=2 \
        benchmarks/ddp_check.py --device cuda
    rc=$?
    if [ "$rc" -eq 124 ]; then
        echo "error: ddp_check ran past 240 s and was stopped" >&2
    fi
fi
exit "$rc"
