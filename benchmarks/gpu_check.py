"""Target 5 (run by gpu_check.sh): seed_cnn trained in bf16 on one CUDA GPU, against its ceiling.

    bash benchmarks/gpu_check.sh [--images 2000] [--epochs 10]

No network, nothing outside the repository needed. Steps, each printed with its seconds so a run
that nears gpu_check.sh's 290 s cap shows where the time went:

1. build data locally: --images synthetic 240x240 JPEGs in a temporary folder, two classes a CNN
   can tell apart (camera-like: muted colours and sensor noise, saved at quality 95; render-like:
   vivid gradients and a highlight, no noise, quality 90), then the pipeline's own functions:
   `standardize_manifest` (shards + index), `assign_splits` (60/20/20), `load_splits`;
2. bf16: the model's compute ceiling on this GPU (the same model, batch and optimizer on random
   tensors already on the GPU, channels_last, forward + backward + step under bf16 autocast, as
   many steps as one epoch, after warm-up), then the real `sneakers.train.train` for --epochs
   epochs with `train_one_epoch` timed (real loop images/s, per epoch) and the whole call timed; its
   loader must be `DeviceBatches` (the uint8 train split on the GPU, batches cut there);
3. fp32, for comparison: the same ceiling and a 2-epoch real run (epoch 2 is the steady one);
4. checks the bf16 run learns: test accuracy of the returned model at its threshold >= 0.9.

Without CUDA it stops at once with one line. --cpu-smoke runs the same code on the CPU at a
tiny size, in fp32 unless the CPU computes bf16 natively (for tests on machines without a GPU;
its figures mean nothing). The last line says PASS or FAIL with real/ceiling for the main
precision and fp32, the seconds of the --epochs run and its test accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import fail, machine, raw_manifest  # noqa: E402

PASS_ACCURACY = 0.9
FP32_EPOCHS = 2  # the comparison: epoch 2 is the steady one


def make_images(raw: Path, n: int, size: int, seed: int) -> None:
    """n synthetic pictures under raw/real and raw/ai-midjourney (half each)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    for folder in ("real", "ai-midjourney"):
        (raw / folder).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        ai = i % 2 == 1
        base = rng.uniform(60, 200, 3)
        if ai:  # vivid diagonal gradient, smooth
            tilt = rng.uniform(-1, 1, 2)
            ramp = (tilt[0] * xx + tilt[1] * yy)[..., None] * rng.uniform(60, 120, 3)
            pixels = np.clip(base + ramp, 0, 255)
        else:  # flat muted background
            pixels = np.broadcast_to(base * 0.8 + 20, (size, size, 3)).copy()
        im = Image.fromarray(pixels.astype(np.uint8))
        draw = ImageDraw.Draw(im)
        cx, cy = rng.uniform(0.3, 0.7, 2) * size
        rx, ry = rng.uniform(0.2, 0.35) * size, rng.uniform(0.1, 0.2) * size
        shoe = tuple(int(v) for v in rng.uniform(0, 255, 3) * (1.0 if ai else 0.6))
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=shoe)
        if ai:  # glossy highlight, then a little blur: render-like
            hx, hy = cx - rx / 3, cy - ry / 3
            draw.ellipse((hx - rx / 5, hy - ry / 5, hx + rx / 5, hy + ry / 5), fill=(250,) * 3)
            im = im.filter(ImageFilter.GaussianBlur(1.2))
        else:  # sensor noise: camera-like
            noisy = np.asarray(im, dtype=np.float32) + rng.normal(0, 10, (size, size, 3))
            im = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        folder = "ai-midjourney" if ai else "real"
        im.save(raw / folder / f"{i:05d}.jpg", "JPEG", quality=90 if ai else 95)


def build_data(tmp: Path, n: int, size: int, seed: int):
    """Raw pictures -> standardized shards -> split.csv -> in-memory splits (the real functions)."""
    from sneakers.data import cache, load_splits
    from sneakers.params import StandardizeSettings
    from sneakers.split import assign_splits
    from sneakers.standardize import standardize_manifest

    raw = tmp / "raw" / "synthetic"
    started = time.perf_counter()
    make_images(raw, n, size, seed)
    made = time.perf_counter()
    settings = StandardizeSettings(size=size)
    index = standardize_manifest(
        raw_manifest(raw), raw.parent, tmp / "standardized", settings, 50_000_000
    )
    split = assign_splits(index, {"train": 0.6, "val": 0.2, "test": 0.2}, seed)
    split[["id", "split"]].to_csv(tmp / "split.csv", index=False)
    splits = load_splits(tmp / "standardized", tmp / "split.csv")
    cache(splits)  # every split decoded into memory
    print(
        f"data: {n} synthetic {size}px images made in {made - started:.1f} s, standardized, "
        f"split and decoded in {time.perf_counter() - made:.1f} s: "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    )
    return splits


class Log:
    """The part of DVCLive's Live that train() uses; keeps the metrics."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}
        self.summary: dict = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)

    def next_step(self) -> None:
        pass


class Clock:
    """Seconds per phase and since the start, printed as each phase ends: a run that nears the
    290 s cap shows where the time went."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()

    def lap(self, phase: str) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        print(f"[{now - self.start:5.1f} s] {phase}: {seconds:.1f} s")
        return seconds

    def total(self) -> float:
        return time.perf_counter() - self.start


def ceiling(
    arch: str, size: int, batch: int, steps: int, precision: str, device, seed: int
) -> float:
    """Images/s of forward + backward + Adam step on random tensors already on the device."""
    import pandas as pd
    import torch
    from torch import nn

    from sneakers.data import SplitData
    from sneakers.params import ModelSettings, RuntimeSettings, TrainSettings
    from sneakers.train import setup

    shape = (batch, 3, size, size)
    data = SplitData(torch.zeros(shape, dtype=torch.uint8), torch.zeros(batch), pd.DataFrame())
    settings = TrainSettings(batch_size=batch, precision=precision, num_workers=0)
    run = setup(data, ModelSettings(arch=arch), settings, RuntimeSettings(device=device.type), seed)
    x = torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with run.autocast:
            loss = loss_fn(run.model(x).float(), y)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()

    for _ in range(5):  # warm-up: kernels chosen, memory pools filled
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch / (time.perf_counter() - started)


def real_run(splits, arch: str, epochs: int, batch: int, precision: str, device, seed: int):
    """The real train(), with train_one_epoch timed; returns (images/s per epoch, what it fitted,
    log, the loader train() made). Validation runs as in the pipeline: runtime.batch_size."""
    import sneakers.train as train_module
    from sneakers.params import ModelSettings, RuntimeSettings, TrainSettings

    seconds: list[float] = []
    loaders: list = []
    inner = train_module.train_one_epoch

    def timed(run, *args, **kwargs):
        loaders.append(run.loader)
        started = time.perf_counter()
        out = inner(run, *args, **kwargs)  # ends on .item(): the GPU has finished
        seconds.append(time.perf_counter() - started)
        return out

    settings = TrainSettings(epochs=epochs, batch_size=batch, precision=precision, num_workers=0)
    runtime = RuntimeSettings(device=device.type, precision=precision)
    n = len(splits["train"])
    seen = n - (n % batch if n % batch == 1 else 0)  # a last batch of one is dropped
    log = Log()
    train_module.train_one_epoch = timed
    try:
        fitted = train_module.train(splits, ModelSettings(arch=arch), settings, runtime, seed, log)
    finally:
        train_module.train_one_epoch = inner
    return [seen / s for s in seconds], fitted, log, loaders[0]


def steady(rates: list[float]) -> float:
    """Median images/s after epoch 1 (which pays the first steps' allocations)."""
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def test_accuracy(fitted, arch: str, test, device, batch: int) -> float:
    """Accuracy at the fitted threshold, in the precision it was validated in, of the network
    rebuilt from the fitted weights as a model file's is (channels_last, eval mode)."""
    import numpy as np
    import torch

    from sneakers.inference import Scorer
    from sneakers.model import build_model

    model = build_model(arch, fitted.image_size)
    model.load_state_dict(fitted.state_dict)
    model = model.to(device, memory_format=torch.channels_last).eval()
    precision = fitted.trained.eval_precision
    p_ai = Scorer(model, device, batch, precision).proba(test.images)
    return float(np.mean((p_ai >= fitted.threshold) == test.labels.numpy()))


def on_device(loader, device) -> bool:
    """On CUDA, train() must keep the uint8 train split on the GPU and cut batches there."""
    import torch

    from sneakers.loader import DeviceBatches

    if device.type != "cuda":
        return True
    return (
        isinstance(loader, DeviceBatches)
        and loader.images.is_cuda
        and loader.images.dtype == torch.uint8
    )


def measure(splits, args, precision: str, epochs: int, device, clock: Clock) -> dict:
    """Ceiling, then the real train(), then test accuracy, for one precision; prints each."""
    steps = max(len(splits["train"]) // args.batch_size, 1)
    top = ceiling("seed_cnn", args.size, args.batch_size, steps, precision, device, args.seed)
    clock.lap(f"{precision} ceiling ({steps} steps after 5 warm-up)")
    rates, fitted, log, loader = real_run(
        splits, "seed_cnn", epochs, args.batch_size, precision, device, args.seed
    )
    seconds = clock.lap(f"{precision} train() for {epochs} epochs")
    accuracy = test_accuracy(fitted, "seed_cnn", splits["test"], device, args.batch_size)
    clock.lap(f"{precision} test accuracy")
    rate = steady(rates)
    per_epoch = ", ".join(f"{r:.0f}" for r in rates)
    print(
        f"{precision}: ceiling {top:.0f} images/s; real loop per epoch {per_epoch} images/s; "
        f"median after epoch 1 {rate:.0f} = {rate / top:.2f} x ceiling; train() {seconds:.1f} s "
        f"({log.summary['images_per_second']:.0f} images/s in its summary)"
    )
    losses = ", ".join(f"{v:.3f}" for v in log.metrics.get("train/loss", []))
    kept = on_device(loader, device)
    print(
        f"{precision}: loader {type(loader).__name__}"
        + (" (uint8 train split on the GPU)" if device.type == "cuda" and kept else "")
        + f"; train loss per epoch {losses}; best epoch {fitted.trained.best_epoch}; "
        f"test accuracy {accuracy:.3f} (threshold {fitted.threshold:.3f}, "
        f"{len(splits['test'])} images)"
    )
    return {"ratio": rate / top, "seconds": seconds, "accuracy": accuracy, "on_device": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run, for tests only")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # what was printed survives timeout's SIGTERM
    clock = Clock()
    import torch

    from sneakers.inference import resolve_precision

    if args.cpu_smoke:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        build = torch.version.cuda or "none"
        fail(
            f"no CUDA GPU is visible to torch {torch.__version__} (CUDA build {build}): "
            "run this on a machine with an NVIDIA GPU"
        )
    else:
        device = torch.device("cuda")
        if not torch.cuda.is_bf16_supported(including_emulation=False):  # no bf16 ceiling
            fail(f"{torch.cuda.get_device_name(device)} has no native bf16: use an A100 or newer")
    if args.images < 20 or args.epochs < 1:
        fail("--images must be >= 20 and --epochs >= 1")
    precision = "bf16" if device.type == "cuda" else resolve_precision("auto", device)
    print(machine())
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(
            f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA "
            f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
        )
    clock.lap(f"start-up (torch import, {device.type} init)")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        splits = build_data(Path(tmp), args.images, args.size, args.seed)
    clock.lap("data")
    run = measure(splits, args, precision, args.epochs, device, clock)
    fp32 = measure(splits, args, "fp32", min(FP32_EPOCHS, args.epochs), device, clock)
    problems = []
    if run["accuracy"] < PASS_ACCURACY:
        problems.append(f"test accuracy below {PASS_ACCURACY}")
    if not (run["on_device"] and fp32["on_device"]):
        problems.append("train() did not keep the train split on the GPU")
    verdict = f"FAIL ({'; '.join(problems)})" if problems else "PASS"
    if args.cpu_smoke:
        verdict += " (cpu smoke run: figures mean nothing)"
    print(
        f"gpu_check {verdict}: real/ceiling {precision} {run['ratio']:.2f}, fp32 "
        f"{fp32['ratio']:.2f}; {args.epochs}-epoch {precision} run {run['seconds']:.1f} s; "
        f"test accuracy {run['accuracy']:.3f}; total {clock.total():.0f} s"
    )
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
