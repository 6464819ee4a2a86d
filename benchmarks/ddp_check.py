"""Two-GPU check: the real train() under torchrun on N GPUs (NCCL) or CPU processes (gloo).

    torchrun --standalone --nproc-per-node 2 benchmarks/ddp_check.py [--device cuda]

Synthetic separable pictures (dark noise; the AI ones carry a bright square), seed_cnn, global
batch --batch-size split across the processes. Rank 0 prints the backend, images/s and the
validation accuracy of the kept model; its last line is PASS or FAIL (accuracy at least 0.9).
`benchmarks/gpu_check.sh` runs it when `nvidia-smi` lists 2 or more GPUs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (importing it puts this checkout's src/ first on sys.path)
import numpy as np
import torch

from sneakers import distributed
from sneakers.inference import Scorer
from sneakers.logs import MemoryLog
from sneakers.params import ModelSettings, RuntimeSettings, TrainSettings
from sneakers.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import synthetic_split  # the test suite's separable pictures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    splits = {
        "train": synthetic_split("train", args.images, args.size, 0),
        "val": synthetic_split("val", max(64, args.images // 8), args.size, 1),
    }
    log = MemoryLog() if distributed.is_main() else None
    started = time.perf_counter()
    settings = TrainSettings(epochs=args.epochs, lr=1e-3, batch_size=args.batch_size)
    fitted = train(splits, ModelSettings(), settings, RuntimeSettings(device=args.device), 0, log)
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "none"
    distributed.leave()
    if fitted is None:
        return
    seconds = time.perf_counter() - started
    model = build(fitted)
    scorer = Scorer(model, next(model.parameters()).device, 64, fitted.trained.eval_precision)
    p = scorer.proba(splits["val"].images)
    accuracy = float(np.mean((p >= fitted.threshold) == splits["val"].labels.numpy()))
    print(
        f"ddp_check: {fitted.trained.processes} processes ({backend}) on "
        f"{fitted.trained.device}, {fitted.trained.precision}; {args.epochs} epochs of "
        f"{args.images} images in {seconds:.1f} s "
        f"({log.summary.get('images_per_second')} images/s); val accuracy {accuracy:.3f}"
    )
    print("PASS" if accuracy >= 0.9 else "FAIL: the run did not learn the separable task")


def build(fitted) -> torch.nn.Module:
    from sneakers.model import build_model

    model = build_model("seed_cnn", fitted.image_size)
    model.load_state_dict(fitted.state_dict)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device, memory_format=torch.channels_last).eval()


if __name__ == "__main__":
    main()
