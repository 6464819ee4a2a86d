"""The benchmark scripts start, fail with one clear line without their data or GPU, and the GPU
check runs end to end on the CPU at a tiny size. Nothing here is timed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
ABSENT = "/nonexistent/sneakers-bench"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("script", "args", "says"),
    [
        ("train_throughput.py", ["--standardized", ABSENT], "standardized data not found"),
        ("train_memory.py", ["--standardized", "{data}", "--split", ABSENT], "split.csv not found"),
        ("standardize_speed.py", ["--raw", ABSENT], "raw images not found"),
        ("dvc_overhead.py", [ABSENT], "is not a DVC repository"),
        ("recipe_table.py", [ABSENT], "is not a DVC repository"),
        ("precision_parity.py", ["--model", ABSENT], "model not found"),
        ("spectral_peaks.py", ["--run", ABSENT], "index.csv not found"),
    ],
)
def test_missing_data_is_one_clear_line(
    script: str, args: list[str], says: str, tmp_path: Path
) -> None:
    """{data} is a standardized folder that exists, so the next missing path is the one named."""
    (tmp_path / "index.csv").write_text("id\n")
    args = [str(tmp_path) if a == "{data}" else a for a in args]
    done = run(sys.executable, str(BENCH / script), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr


def test_gpu_check_without_cuda_is_one_clear_line() -> None:
    done = run("bash", str(BENCH / "gpu_check.sh"), env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no CUDA GPU"), done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_gpu_check_code_path_runs_on_cpu() -> None:
    """Everything but CUDA: data building, ceilings, the real train(), the accuracy check. The
    main precision is bf16 on a GPU; on this CPU it is whatever `auto` resolves to."""
    done = run(
        sys.executable,
        str(BENCH / "gpu_check.py"),
        "--cpu-smoke",
        *("--images", "60", "--size", "40", "--epochs", "1", "--batch-size", "8"),
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a tiny run may not learn
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"gpu_check (PASS|FAIL \(.+\)) \(cpu smoke run: figures mean nothing\): "
        r"real/ceiling (bf16|fp32) \d+\.\d\d, fp32 \d+\.\d\d; 1-epoch (bf16|fp32) run "
        r"\d+\.\d s; test accuracy \d\.\d{3}; total \d+ s",
        last,
    ), last
    assert "train loss per epoch" in done.stdout and "loader DataLoader" in done.stdout
    assert "] fp32 train() for 1 epochs: " in done.stdout  # the phase timings


def test_precision_benchmark_measures_every_eager_variant_and_ends_with_the_ratios() -> None:
    """Tiny and without the compiled variants (a compile takes about a minute here)."""
    done = run(
        sys.executable,
        str(BENCH / "precision.py"),
        "--size",
        "40",
        "--batch-size",
        "4",
        "--steps",
        "1",
        "--eval-batches",
        "1",
        "--skip",
        "compile",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[1].startswith("peak: ") and "GFLOP forward" in lines[2]
    for kind in ("train", "eval"):
        for variant in ("fp32", "bf16-autocast", "bf16-weights"):
            assert any(re.match(rf"{kind}\s+{variant}\s+[\d.]+ img/s .* of the", x) for x in lines)
    assert not any("compile" in x for x in lines)
    assert re.fullmatch(
        r"best train / fp32 train [\d.]+ \([\w-]+\), best eval / fp32 eval [\d.]+ \([\w-]+\)",
        lines[-1],
    ), lines[-1]


def test_scale_benchmark_measures_every_task_and_ends_with_the_ratios() -> None:
    """Tiny: one size, two standardized images of 128 px."""
    done = run(
        sys.executable,
        str(BENCH / "scale.py"),
        "--sizes",
        "200",
        "--standardize-images",
        "2",
        "--input-side",
        "128",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    kinds = ("near index", "near scan", "standardize", "stream", "in-memory")
    for kind in kinds:
        assert any(
            re.match(rf"{kind}\s+200\s+[\d.]+\s+[\d.]+(\s+\d+){{4}}\s+1\.00", x) for x in lines
        ), kind
    # the streamed epoch's DataLoader workers ran and were measured
    assert re.search(r"^stream\s+200(\s+[\d.]+){5}\s+[1-9]\d*\s+1\.00", done.stdout, re.M)
    assert re.search(r"near scan\s+200 .* (\d+) pairs, the same", done.stdout)
    assert lines[-len(kinds) :] == [
        f"time per image over the smallest size: {kind} 1.00 at 200" for kind in kinds
    ]
