"""Shared by the benchmark scripts: default data paths, one-line failures, machine and load notes.

Benchmarks read data beside the repository, never inside it:

- `../shared/data/shoes-real-vs-ai`: the 1,976 raw JPEGs (read-only, never copied in);
- `../sharedrun/data/standardized` and `../sharedrun/data/split/split.csv`: a standardized copy
  of it (what `dvc exp run -S data.profile=shared` writes to `data/standardized` and `data/split`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# Measure this checkout's code even where `sneakers` is installed from another one.
sys.path.insert(0, str(ROOT / "src"))
SHARED_RAW = ROOT.parent / "shared" / "data" / "shoes-real-vs-ai"
SHARED_STANDARDIZED = ROOT.parent / "sharedrun" / "data" / "standardized"
SHARED_SPLIT = ROOT.parent / "sharedrun" / "data" / "split" / "split.csv"
LABELS = {"real": "real", "ai-midjourney": "ai"}  # first folder -> label, as in params.yaml


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """The standardized shared data a training benchmark reads, and the raw images to
    standardize again when it wants another size."""
    parser.add_argument("--standardized", type=Path, default=SHARED_STANDARDIZED)
    parser.add_argument("--split", type=Path, default=SHARED_SPLIT)
    parser.add_argument(
        "--raw",
        type=Path,
        default=SHARED_RAW,
        help="raw images: to standardize at --size; the study's loader",
    )
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--seed", type=int, default=42)


def add_step_args(parser: argparse.ArgumentParser, steps: int, eval_batches: int) -> None:
    """The model, batch, step counts, threads and seed of a train-step / eval benchmark."""
    parser.add_argument("--arch", default="seed_cnn")
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=steps, help="timed train steps each")
    parser.add_argument("--eval-batches", type=int, default=eval_batches, help="timed eval batches")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as torch sets)")
    parser.add_argument("--seed", type=int, default=42)


def apply_step_args(args: argparse.Namespace) -> None:
    """Check the step counts (one line on error) and set the torch threads."""
    if args.steps < 1 or args.eval_batches < 1:
        fail("--steps and --eval-batches must be at least 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def need_data(args: argparse.Namespace) -> None:
    """Fail with one line when the data of add_data_args is absent."""
    hint = "pass --standardized DIR --split CSV (run `dvc exp run -S data.profile=shared`)"
    need(args.standardized / "index.csv", "standardized data", hint)
    need(args.split, "split.csv", hint)


def fail(message: str) -> None:
    """Stop with one clear line (exit status 2)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def need(path: Path, what: str, hint: str) -> Path:
    """Fail with one line when a data path is absent."""
    if not path.exists():
        fail(f"{what} not found at {path}: {hint}")
    return path


def load() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def machine() -> str:
    """One line naming this machine: CPU model, cores, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import PIL

    import sneakers

    parts = [cpu, f"{os.cpu_count()} cores", f"Python {platform.python_version()}"]
    parts.append(f"Pillow {PIL.__version__}")
    parts.append(f"sneakers from {Path(sneakers.__file__).parent}")
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    return ", ".join(parts)


def image_size(standardized: Path) -> int:
    """Side length of the images in a standardized folder (from its first image)."""
    from sneakers.data import decode
    from sneakers.files import read_csv
    from sneakers.shards import read_image

    return int(
        decode(read_image(standardized, read_csv(standardized / "index.csv").iloc[0])).shape[0]
    )


def standardized_at(standardized: Path, raw: Path, size: int, tmp: Path) -> Path:
    """A standardized folder at this size: the given one if its images have that size, else one
    built from the raw images into tmp with the stage's own function (same ids, so the same
    split.csv applies)."""
    from sneakers.files import read_csv
    from sneakers.params import StandardizeSettings
    from sneakers.standardize import standardize_manifest

    current = image_size(standardized)
    if size == current:
        return standardized
    need(
        raw,
        f"raw images (to standardize at {size}px; {standardized} is at {current}px)",
        "pass --raw FOLDER",
    )
    ids = set(read_csv(standardized / "index.csv")["id"])
    print(
        f"{standardized} holds {current}px images: standardizing {len(ids)} images of {raw} "
        f"at {size}px into a temporary folder"
    )
    out = tmp / "standardized"
    settings = StandardizeSettings(size=size)
    standardize_manifest(raw_manifest(raw, keep_ids=ids), raw.parent, out, settings, 50_000_000)
    return out


def raw_manifest(raw_dir: Path, keep_ids: set[str] | None = None) -> pd.DataFrame:
    """An all-accepted manifest of a raw folder laid out like the shared copy (`real/`, `ai-*/`).

    Rows have the columns standardize_manifest reads; `source` is the folder's name, so pass
    `raw_dir.parent` as its raw_dir. With keep_ids, only files whose id (the first 16 hex digits
    of their sha256, as merge computes it) is listed are kept, once each.
    """
    rows, seen = [], set()
    for path in sorted(p for p in raw_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(raw_dir)
        label = LABELS.get(rel.parts[0]) if len(rel.parts) > 1 else None
        if label is None or path.name.startswith("."):
            continue
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if keep_ids is not None and (sha[:16] not in keep_ids or sha[:16] in seen):
            continue
        seen.add(sha[:16])
        rows.append(
            {
                "source": raw_dir.name,
                "role": "train",
                "path": rel.as_posix(),
                "label": label,
                "brand": None,
                "generator": "midjourney" if label == "ai" else None,
                "status": "accepted",
                "group": None,
                "id": sha[:16],
            }
        )
    if not rows:
        fail(f"no labelled images under {raw_dir} (expected real/ and ai-midjourney/ folders)")
    return pd.DataFrame(rows)
