"""The model file: one typed schema, written by train and read by evaluate, predict and info.

A model file is a `torch.save`d dict, loadable with `weights_only=True` (no code runs): the
fields of `Card` plus `state_dict`. Files of an older format, or ones that do not fit the
schema, are refused with one line that says to re-train.
"""

from __future__ import annotations

import io
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import PIL
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

import sneakers
from sneakers.backbones import backbone_sha256
from sneakers.data import CLASS_NAMES, MEAN, STD
from sneakers.errors import SneakersError
from sneakers.files import write_atomic
from sneakers.model import build_model
from sneakers.params import (
    Arch,
    Input,
    MergeSettings,
    ModelSettings,
    Part,
    Pool,
    explain,
    location,
)
from sneakers.preprocess import Recipe

FORMAT = "sneakers-model"
VERSION = 2  # 1: before this schema (arch_args, no input); refused with "re-train"
# For model files written before the card kept merge.min_size: merge's default, what the
# pipeline trained with unless params.yaml changed it.
DEFAULT_MIN_SIZE = MergeSettings().min_size
OURS = "use a model file that the train stage wrote, e.g. models/model.pt after `dvc repro`"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Trained(Record):
    """How the weights were made."""

    epochs: int
    best_epoch: int
    best_val_loss: float
    seed: int
    device: str
    precision: str  # training steps, resolved: fp32 | bf16
    eval_precision: str  # validation, resolved
    processes: int = 1  # torchrun processes that trained it (train.nproc_per_node, x nodes)
    generators: list[str] = []  # whose AI pictures it trained on (none listed in older files)


class Card(Record):
    """Everything in a model file but the weights."""

    format: Literal["sneakers-model"] = FORMAT
    format_version: Literal[2] = VERSION
    arch: Arch
    input: Input
    class_names: list[str]
    threshold: Annotated[float, Field(gt=0, lt=1)]  # P(ai) at or above which a picture is ai
    preprocess: Recipe
    # merge.min_size of the training data: predict refuses smaller pictures, as merge did.
    # None in files from before the card kept it (see smallest_side).
    min_size: Annotated[int, Field(ge=1)] | None = None
    # sha256 of the ImageNet weights a backbone started from (sneakers.backbones); None for the
    # architectures trained from scratch, and in files from before backbones.
    backbone_sha256: str | None = None
    # model.train and model.pool: what of a backbone trained, and how its features are pooled
    # (all and mean for the architectures trained from scratch, and in older files).
    part: Part = "all"
    pool: Pool = "mean"
    mean: float  # inputs are (pixel / 255 - mean) / std, every channel alike
    std: float
    trained: Trained
    data_profile: str
    versions: dict[str, str]

    @model_validator(mode="before")
    @classmethod
    def _size_in_the_recipe(cls, stored: Any) -> Any:
        """Format 2 files written before the recipe alone kept the size also hold image_size:
        dropped where it is the recipe's, refused where it is not."""
        if not (isinstance(stored, dict) and "image_size" in stored):
            return stored
        stored = dict(stored)
        size, recipe = stored.pop("image_size"), stored.get("preprocess")
        if isinstance(recipe, dict) and size != recipe.get("size"):
            raise ValueError(f"image_size {size} != preprocess.size")
        return stored

    @model_validator(mode="after")
    def _fits_this_code(self) -> Card:
        if (self.class_names, self.mean, self.std) != (list(CLASS_NAMES), MEAN, STD):
            raise ValueError("class names, mean or std differ from this code's")
        return self

    def smallest_side(self) -> int:
        """The shortest side a picture needs to be scored: min_size, or DEFAULT_MIN_SIZE for a
        file from before the card kept it."""
        return DEFAULT_MIN_SIZE if self.min_size is None else self.min_size

    @property
    def image_size(self) -> int:
        """The side the network takes: the recipe's, which the file stores once."""
        return self.preprocess.size


@dataclass(frozen=True)
class Fitted:
    """What training makes: weights, the threshold fixed on validation, and how."""

    state_dict: dict[str, torch.Tensor]
    image_size: int
    threshold: float
    trained: Trained


@dataclass(frozen=True)
class Artifact:
    """A model file in memory."""

    card: Card
    state_dict: dict[str, torch.Tensor]

    @classmethod
    def of(
        cls,
        fitted: Fitted,
        model: ModelSettings,
        recipe: Recipe,
        profile: str,
        min_size: int | None = None,
    ) -> Artifact:
        """The model file of a training run; min_size, the merge.min_size of its data."""
        if fitted.image_size != recipe.size:
            raise ValueError(f"image_size {fitted.image_size} != preprocess.size")
        card = Card(
            arch=model.arch,
            input=model.input,
            class_names=list(CLASS_NAMES),
            threshold=fitted.threshold,
            preprocess=recipe,
            min_size=min_size,
            backbone_sha256=backbone_sha256(model.arch),
            part=model.part,
            pool=model.pooling,
            mean=MEAN,
            std=STD,
            trained=fitted.trained,
            data_profile=profile,
            versions=versions(),
        )
        return cls(card, fitted.state_dict)

    def network(self, device: torch.device) -> nn.Module:
        """The network, weights loaded, in eval mode on device (channels_last)."""
        # Every weight comes from the file: a backbone's ImageNet ones are not read again.
        card = self.card
        model = build_model(
            card.arch,
            card.image_size,
            pretrained=False,
            input=card.input,
            part=card.part,
            pool=card.pool,
        )
        model.load_state_dict(self.state_dict)
        return model.to(device, memory_format=torch.channels_last).eval()


def versions() -> dict[str, str]:
    """Library versions recorded with every model and run."""
    return {
        "sneakers": getattr(sneakers, "__version__", "0"),
        "torch": str(torch.__version__),
        "torchvision": metadata.version("torchvision"),
        "pillow": PIL.__version__,
        "python": platform.python_version(),
    }


def save(path: Path, artifact: Artifact) -> None:
    """Write to a temporary name, then rename: a partial file never passes for a model."""
    buffer = io.BytesIO()
    torch.save({**artifact.card.model_dump(), "state_dict": artifact.state_dict}, buffer)
    write_atomic(path, buffer.getvalue())


def load(path: Path, device: torch.device) -> tuple[Artifact, nn.Module]:
    """Load a model file safely (weights_only=True: no code runs), check it against the schema
    and build its network on device; any problem is one line."""
    if not path.exists():
        raise SneakersError(f"no model at {path}: train one with `dvc repro` or name another file")
    if path.is_dir():
        raise SneakersError(f"{path} is a folder: name a model file (models/model.pt by default)")
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        raise SneakersError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # noqa: BLE001 - any failure here means "not a usable artifact"
        raise SneakersError(_unreadable(path, err)) from None
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        raise SneakersError(f"{path} is not a sneakers model file (no '{FORMAT}' tag)")
    if stored.get("format_version") != VERSION:
        raise SneakersError(
            f"{path} is a format {stored.get('format_version')!r} model file; this sneakers reads "
            f"format {VERSION}: re-train it with `dvc repro`"
        )
    state_dict = stored.pop("state_dict", None)
    try:
        artifact = Artifact(Card.model_validate(stored), state_dict)
        network = artifact.network(device)
    except ValidationError as err:
        first = err.errors()[0]
        what = "missing" if first["type"] == "missing" else explain(first)
        problem = f"{location(first['loc']) or 'card'}: {what}"
        raise SneakersError(f"{path}: {problem}: re-train it with `dvc repro`") from None
    except Exception as err:  # noqa: BLE001 - a tagged file whose weights do not fit its arch
        raise SneakersError(
            f"{path} is not a usable sneakers model ({_first_line(err)}): re-train it"
        ) from None
    return artifact, network


def _unreadable(path: Path, err: Exception) -> str:
    """Why torch.load refused a file, in our words: torch's own message suggests loading it
    with weights_only=False, which would run whatever code the file holds."""
    needs = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if needs:  # the file holds pickled objects beyond tensors (a whole module, or a payload)
        return (
            f"{path} is not a sneakers model file: loading it would run Python code "
            f"({needs.group(1)}), so it was refused without running it ({OURS})"
        )
    return f"{path} is not a sneakers model file (not a PyTorch file, or a damaged one): {OURS}"


def _first_line(err: Exception) -> str:
    """An exception's first line, without the terminal colours torch puts in some."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return text.splitlines()[0] if text else type(err).__name__
