"""The benchmark scripts start, fail with one clear line without their data or GPU, and the GPU
check runs end to end on the CPU at a tiny size. Nothing here is timed."""

from __future__ import annotations

import os
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
    """Everything but CUDA: data building, ceiling, the real train(), the accuracy check."""
    done = run(
        sys.executable,
        str(BENCH / "gpu_check.py"),
        "--cpu-smoke",
        *("--images", "60", "--size", "40", "--epochs", "2", "--batch-size", "8"),
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a tiny run may not learn
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("gpu_check ") and "real/ceiling fp32" in last and "bf16" in last
    assert "train loss per epoch" in done.stdout
