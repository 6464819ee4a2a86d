"""Target 5 (run by gpu_check.sh): seed_cnn on one CUDA GPU, fp32 and bf16, against its ceiling.

    bash benchmarks/gpu_check.sh [--images 2000] [--epochs 3]

No network, nothing outside the repository needed. Steps:

1. build data locally: --images synthetic 240x240 JPEGs in a temporary folder, two classes a CNN
   can tell apart (camera-like: muted colours and sensor noise, saved at quality 95; render-like:
   vivid gradients and a highlight, no noise, quality 90), then the pipeline's own functions:
   `standardize_manifest` (shards + index), `assign_splits` (60/20/20), `load_splits`;
2. for fp32 and for bf16 autocast: the model's compute ceiling on this GPU (the same model,
   batch and optimizer on random tensors already on the GPU, channels_last, forward + backward
   + step, as many steps as one epoch, after warm-up), then the real `sneakers.train.train` for
   --epochs epochs with `train_epoch` timed (real loop images/s, per epoch);
3. checks the runs learn: test accuracy of the returned model at its threshold >= 0.9.

Without CUDA it stops at once with one line. --cpu-smoke runs the same code on the CPU at a
tiny size (for tests on machines without a GPU; its figures mean nothing).
The last line says PASS or FAIL with real/ceiling for fp32 and bf16.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import fail, machine, raw_manifest  # noqa: E402

PASS_ACCURACY = 0.9


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
    from sneakers.data import load_splits
    from sneakers.split import assign_splits
    from sneakers.standardize import StandardizeSettings, standardize_manifest

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
    print(f"data: {n} synthetic {size}px images made in {made - started:.1f} s, standardized, "
          f"split and decoded in {time.perf_counter() - made:.1f} s: "
          + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))  # fmt: skip
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


def ceiling(arch: str, size: int, batch: int, steps: int, bf16: bool, device, seed: int) -> float:
    """Images/s of forward + backward + Adam step on random tensors already on the device."""
    import torch
    from torch import nn

    from sneakers.inference import autocast
    from sneakers.model import build_model
    from sneakers.train import seed_everything

    seed_everything(seed)
    model = build_model(arch, size).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, size, size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with autocast(device, bf16):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):  # warm-up: kernels chosen, memory pools filled
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch / (time.perf_counter() - started)


def real_run(splits, arch: str, epochs: int, batch: int, bf16: bool, device, seed: int):
    """The real train(), with train_epoch timed; returns (images/s per epoch, artifact, log)."""
    import sneakers.train as train_module

    seconds: list[float] = []
    inner = train_module.train_epoch

    def timed(*args, **kwargs):
        started = time.perf_counter()
        out = inner(*args, **kwargs)  # ends on loss.item(): the GPU has finished the epoch
        seconds.append(time.perf_counter() - started)
        return out

    settings = train_module.TrainSettings(
        epochs=epochs, batch_size=batch, device=device.type, bf16=bf16, num_workers=0
    )
    n = len(splits["train"])
    seen = n - (n % batch if n % batch == 1 else 0)  # make_loader drops a last batch of one
    log = Log()
    train_module.train_epoch = timed
    try:
        artifact = train_module.train(splits, arch, settings, seed, log)
    finally:
        train_module.train_epoch = inner
    return [seen / s for s in seconds], artifact, log


def test_accuracy(artifact, test, device, batch: int) -> float:
    import numpy as np

    from sneakers.inference import model_from_artifact, predict_proba

    model = model_from_artifact(artifact, device)
    p_ai = predict_proba(model, test.images, device, batch, bf16=False)
    return float(np.mean((p_ai >= artifact["threshold"]) == test.labels.numpy()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run, for tests only")
    args = parser.parse_args()
    import torch

    if args.cpu_smoke:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        build = torch.version.cuda or "none"
        fail(f"no CUDA GPU is visible to torch {torch.__version__} (CUDA build {build}): "
             "run this on a machine with an NVIDIA GPU")  # fmt: skip
    else:
        device = torch.device("cuda")
    if args.images < 20 or args.epochs < 1:
        fail("--images must be >= 20 and --epochs >= 1")
    print(machine())
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA "
              f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        splits = build_data(Path(tmp), args.images, args.size, args.seed)
    steps = max(len(splits["train"]) // args.batch_size, 1)
    results = {}
    for bf16 in (False, True):
        name = "bf16" if bf16 else "fp32"
        top = ceiling("seed_cnn", args.size, args.batch_size, steps, bf16, device, args.seed)
        rates, artifact, log = real_run(
            splits, "seed_cnn", args.epochs, args.batch_size, bf16, device, args.seed
        )
        steady = max(rates[1:]) if len(rates) > 1 else rates[0]
        accuracy = test_accuracy(artifact, splits["test"], device, args.batch_size)
        results[name] = (steady / top, accuracy)
        per_epoch = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{name}: ceiling {top:.0f} images/s ({steps} steps); real loop per epoch "
              f"{per_epoch} images/s; best after epoch 1 {steady:.0f} = {steady / top:.2f} x "
              "ceiling")  # fmt: skip
        losses = ", ".join(f"{v:.3f}" for v in log.metrics.get("train/loss", []))
        print(f"{name}: train loss per epoch {losses}; best epoch "
              f"{artifact['trained']['best_epoch']}; test accuracy {accuracy:.3f} "
              f"(threshold {artifact['threshold']:.3f}, {len(splits['test'])} images)")  # fmt: skip
    learned = all(acc >= PASS_ACCURACY for _, acc in results.values())
    print(f"total {time.perf_counter() - started:.0f} s on {device.type}")
    verdict = "PASS" if learned else f"FAIL (test accuracy below {PASS_ACCURACY})"
    if args.cpu_smoke:
        verdict += " (cpu smoke run: figures mean nothing)"
    print(f"gpu_check {verdict}: real/ceiling fp32 {results['fp32'][0]:.2f}, "
          f"bf16 {results['bf16'][0]:.2f}; test accuracy fp32 {results['fp32'][1]:.3f}, "
          f"bf16 {results['bf16'][1]:.3f}")  # fmt: skip
    if not learned:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
