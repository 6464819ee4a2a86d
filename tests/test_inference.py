"""The model artifact (safe to load, refused when it is not ours) and batched inference."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import model_like_trained

from sneakers.errors import SneakersError
from sneakers.inference import (
    ARTIFACT_FORMAT,
    _note_emulated,
    load_artifact,
    model_from_artifact,
    native_bf16,
    predict_proba,
    resolve_precision,
    save_artifact,
    to_input,
)
from sneakers.model import build_model

CPU = torch.device("cpu")
SIZE = 40


class WritesMarker:
    """Unpickling this creates a marker file: proof that a pickle ran code (harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return Path.touch, (self.marker,)


def small_artifact() -> dict[str, Any]:
    """A gap_cnn artifact with non-trivial BatchNorm statistics, as training leaves them."""
    model = model_like_trained("gap_cnn", SIZE)
    return {
        "arch": "gap_cnn",
        "image_size": SIZE,
        "threshold": 0.42,
        "state_dict": model.state_dict(),
        "trained": {"epochs": 1, "best_epoch": 1, "seed": 0, "device": "cpu"},
        "class_names": ["real", "ai"],
    }


def images(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8, generator=generator)


# --- the artifact file ---


def test_round_trip_and_plain_torch_load_with_weights_only(tmp_path: Path) -> None:
    artifact, path = small_artifact(), tmp_path / "models" / "model.pt"
    save_artifact(path, artifact)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no .partial left behind

    raw = torch.load(path, map_location="cpu", weights_only=True)  # what a user may run
    assert raw["format"] == ARTIFACT_FORMAT and raw["format_version"] == 1

    loaded = load_artifact(path)
    assert set(loaded) == set(artifact) | {"format", "format_version"}
    assert loaded["threshold"] == 0.42 and loaded["trained"] == artifact["trained"]
    for key, value in artifact["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], value), key


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda: build_model("gap_cnn", SIZE).state_dict(), id="plain-state-dict"),
        pytest.param(lambda: {"arch": "gap_cnn", "threshold": 0.5}, id="dict-without-tag"),
        pytest.param(lambda: {"format": "someone-elses-model"}, id="wrong-tag"),
        pytest.param(lambda: [torch.zeros(2)], id="list"),
    ],
)
def test_torch_files_that_are_not_our_artifact_are_refused(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "other.pt"
    torch.save(content(), path)
    with pytest.raises(SneakersError, match="not a sneakers model file") as err:
        load_artifact(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path: Path, writer: str) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    payload = {"format": ARTIFACT_FORMAT, "state_dict": {}, "boom": WritesMarker(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    # The payload is live: an unrestricted unpickler runs it.
    if writer == "pickle":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(SneakersError, match="not a sneakers model file") as err:
        load_artifact(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_missing_model_points_to_dvc_repro(tmp_path: Path) -> None:
    with pytest.raises(SneakersError, match="dvc repro"):
        load_artifact(tmp_path / "models" / "model.pt")


@pytest.mark.parametrize(
    "data", [b"", b"not a model at all\n" * 10, bytes(range(256)) * 4], ids=["empty", "text", "bin"]
)
def test_garbage_files_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    with pytest.raises(SneakersError, match="not a sneakers model file") as err:
        load_artifact(path)
    assert str(path) in str(err.value)


def test_model_from_artifact_reproduces_the_outputs(tmp_path: Path) -> None:
    artifact = small_artifact()
    original = build_model("gap_cnn", SIZE)
    original.load_state_dict(artifact["state_dict"])
    original.eval()
    save_artifact(tmp_path / "model.pt", artifact)

    rebuilt = model_from_artifact(load_artifact(tmp_path / "model.pt"), CPU)
    assert not rebuilt.training  # eval mode: BatchNorm uses the stored statistics
    x = to_input(images(5), CPU)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), original(x), rtol=1e-5, atol=1e-6)


# --- inputs and probabilities ---


def test_to_input_scales_to_minus_one_one_channels_last() -> None:
    x = images(3)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0, 255
    before = x.clone()
    out = to_input(x, CPU)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert out[0, 0, 0, 0] == -1.0 and out[0, 0, 0, 1] == 1.0
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0
    torch.testing.assert_close(out, x.float() / 127.5 - 1.0)
    assert torch.equal(x, before)  # the caller's tensor is not scaled in place


@pytest.mark.parametrize("n", [0, 1, 7, 8, 13])
def test_predict_proba_covers_every_image_in_order(n: int) -> None:
    artifact = small_artifact()
    model = model_from_artifact(artifact, CPU)
    x = images(n, seed=n)
    p_ai = predict_proba(model, x, CPU, batch_size=4, precision="fp32")
    assert isinstance(p_ai, np.ndarray) and p_ai.shape == (n,)
    assert ((p_ai >= 0) & (p_ai <= 1)).all()
    if n:
        with torch.no_grad():
            expected = torch.softmax(model(to_input(x, CPU)), dim=1)[:, 1].numpy()
        np.testing.assert_allclose(p_ai, expected, rtol=1e-5, atol=1e-6)


# --- precision ---


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ({"amx_bf16": True, "avx512_bf16": True}, True),  # Sapphire Rapids and later Xeons
        ({"amx_bf16": False, "avx512_bf16": True}, True),  # Cooper Lake, Zen 4
        ({"amx_bf16": False, "avx512_bf16": False, "avx2": True}, False),  # bf16 emulated
    ],
)
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(
    monkeypatch: pytest.MonkeyPatch, flags: dict[str, bool], native: bool
) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: flags)
    assert native_bf16(CPU) is native
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", CPU) == "fp32"  # an explicit choice is kept either way
    assert resolve_precision("bf16", CPU) == "bf16"


def test_an_unknown_precision_names_the_choices() -> None:
    with pytest.raises(SneakersError, match="fp16.*auto, fp32, bf16"):
        resolve_precision("fp16", CPU)


def test_bf16_inference_runs_in_bf16_and_agrees_with_fp32() -> None:
    model = model_from_artifact(small_artifact(), CPU)
    x = images(16, seed=3)
    fp32 = predict_proba(model, x, CPU, batch_size=8, precision="fp32")
    bf16 = predict_proba(model, x, CPU, batch_size=8, precision="bf16")
    assert not np.array_equal(fp32, bf16)  # autocast really changed the arithmetic...
    np.testing.assert_allclose(bf16, fp32, atol=0.05)  # ...by bf16's rounding, no more


def test_emulated_bf16_says_so_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    _note_emulated.cache_clear()
    for _ in range(3):  # train asks for both precisions, predict once more
        assert resolve_precision("bf16", CPU) == "bf16"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: cpu has no native bf16"), lines
