"""Batched inference: input scaling, probabilities in order, the device and the precision (the
model file itself is tested in test_artifact.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import model_like_trained
from torch import nn

from sneakers.errors import SneakersError
from sneakers.inference import (
    DEVICES,
    PRECISIONS,
    Scorer,
    _note_emulated,
    native_bf16,
    resolve_device,
    resolve_precision,
    to_input,
)

CPU = torch.device("cpu")
SIZE = 40


def small_model() -> nn.Module:
    """A gap_cnn with non-trivial BatchNorm statistics, in eval mode on the CPU, channels_last,
    as a model file's network is."""
    model = model_like_trained("gap_cnn", SIZE)
    return model.to(CPU, memory_format=torch.channels_last).eval()


def images(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8, generator=generator)


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
def test_the_scorer_covers_every_image_in_order(n: int) -> None:
    model = small_model()
    x = images(n, seed=n)
    p_ai = Scorer(model, CPU, batch_size=4, precision="fp32").proba(x)
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
    model = small_model()
    x = images(16, seed=3)
    fp32 = Scorer(model, CPU, batch_size=8, precision="fp32").proba(x)
    bf16 = Scorer(model, CPU, batch_size=8, precision="bf16").proba(x)
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


# --- device ---


def test_the_choices_are_the_params_ones() -> None:
    assert DEVICES == ("auto", "cpu", "cuda")
    assert PRECISIONS == ("auto", "fp32", "bf16")


@pytest.mark.parametrize("where", [None, "--device"])
def test_device_errors_name_the_setting_they_came_from(
    monkeypatch: pytest.MonkeyPatch, where: str | None
) -> None:
    named = "runtime.device" if where is None else where
    args = () if where is None else (where,)
    with pytest.raises(SneakersError) as err:
        resolve_device("tpu", *args)
    assert str(err.value) == f"{named}: is 'tpu' (use auto, cpu or cuda)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SneakersError) as err:
        resolve_device("cuda", *args)
    assert str(err.value) == f"{named}: is cuda but no CUDA GPU is visible (use auto or cpu)"
    assert resolve_device("auto", *args) == CPU  # no GPU: auto falls back to the CPU
    assert resolve_device("cpu", *args) == CPU
