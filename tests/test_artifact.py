"""The model file (sneakers.artifact): a typed Card plus weights, safe to load (no code runs),
and refused with one line when it is not ours, is of an older format or breaks the schema."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import (
    MIN_SIZE,
    SYNTH_SIZE,
    make_artifact,
    model_like_trained,
    stored,
    synthetic_recipe,
    trained_record,
)

from sneakers import artifact
from sneakers.artifact import Artifact, Card, Fitted
from sneakers.data import CLASS_NAMES, MEAN, STD
from sneakers.errors import SneakersError
from sneakers.inference import to_input
from sneakers.model import build_model
from sneakers.params import ModelSettings

CPU = torch.device("cpu")
SIZE = SYNTH_SIZE  # make_artifact's default


class WritesMarker:
    """Unpickling this creates a marker file: proof that a pickle ran code (harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return Path.touch, (self.marker,)


def refusal(path: Path) -> str:
    """The one-line SneakersError that loading path gives; it names the file."""
    with pytest.raises(SneakersError) as err:
        artifact.load(path, CPU)
    message = str(err.value)
    assert "\n" not in message and message.strip() == message, message
    assert str(path) in message, message
    return message


def images(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8, generator=generator)


# --- what a model file holds, and loading it back ---


def test_a_card_records_the_model_data_and_code() -> None:
    recipe = synthetic_recipe(SIZE)
    card = make_artifact("seed_cnn", threshold=0.3, recipe=recipe, profile="demo").card
    assert (card.format, card.format_version) == ("sneakers-model", 2)
    assert (card.arch, card.input, card.image_size, card.threshold) == (
        "seed_cnn",
        "rgb",
        SIZE,
        0.3,
    )
    assert card.preprocess == recipe and card.data_profile == "demo"
    assert card.trained == trained_record()
    assert card.min_size == card.smallest_side() == MIN_SIZE
    assert (card.class_names, card.mean, card.std) == (list(CLASS_NAMES), MEAN, STD)
    assert card.versions == artifact.versions()
    assert set(card.versions) == {"sneakers", "torch", "torchvision", "pillow", "python"}
    assert card.versions["torch"] == str(torch.__version__)


def test_a_saved_artifact_loads_back_equal(tmp_path: Path) -> None:
    original, path = make_artifact(), tmp_path / "models" / "model.pt"
    artifact.save(path, original)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no .partial left behind

    loaded, network = artifact.load(path, CPU)
    assert loaded.card == original.card
    assert loaded.card.preprocess == original.card.preprocess  # the nested models too
    assert loaded.card.trained == original.card.trained
    assert set(loaded.state_dict) == set(original.state_dict)
    for key, value in original.state_dict.items():
        assert torch.equal(loaded.state_dict[key], value), key
    assert not network.training  # eval mode: BatchNorm uses the stored statistics


def test_a_model_file_is_a_plain_dict_that_loads_with_weights_only(tmp_path: Path) -> None:
    original, path = make_artifact(), tmp_path / "model.pt"
    artifact.save(path, original)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # what a user may run
    assert raw["format"] == "sneakers-model" and raw["format_version"] == 2
    assert set(raw) == set(Card.model_fields) | {"state_dict"}
    assert "image_size" not in raw and raw["preprocess"]["size"] == SIZE  # the size, once
    assert raw["preprocess"] == original.card.preprocess.model_dump()  # no mean/std inside
    assert (raw["mean"], raw["std"], raw["threshold"]) == (MEAN, STD, 0.42)


def test_the_loaded_network_reproduces_the_outputs(tmp_path: Path) -> None:
    original = model_like_trained("gap_cnn", SIZE).eval()
    artifact.save(tmp_path / "model.pt", make_artifact("gap_cnn", model=original))
    _, rebuilt = artifact.load(tmp_path / "model.pt", CPU)
    assert not rebuilt.training
    assert next(rebuilt.parameters()).device == CPU
    x = to_input(images(5), CPU)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), original(x), rtol=1e-5, atol=1e-6)


def test_network_builds_the_cards_input(tmp_path: Path) -> None:
    """A non-rgb model (the input is part of the card, not of arch_args any more)."""
    torch.manual_seed(0)
    model = build_model("seed_cnn", SIZE, input="npr")
    fitted = Fitted(model.state_dict(), SIZE, 0.5, trained_record())
    npr = Artifact.of(fitted, ModelSettings(arch="seed_cnn", input="npr"), synthetic_recipe(), "x")
    artifact.save(tmp_path / "model.pt", npr)
    loaded, network = artifact.load(tmp_path / "model.pt", CPU)
    assert loaded.card.input == "npr"
    x = to_input(images(3), CPU)
    with torch.no_grad():
        torch.testing.assert_close(network(x), model.eval()(x), rtol=1e-5, atol=1e-6)


# --- refused with one line ---


def test_a_format_1_model_file_says_to_retrain(tmp_path: Path) -> None:
    """A model file as sneakers wrote it before the Card (arch_args, mean/std in preprocess)."""
    model, path = model_like_trained("seed_cnn", SIZE), tmp_path / "old.pt"
    torch.save(
        {
            "format": "sneakers-model",
            "format_version": 1,
            "arch": "seed_cnn",
            "arch_args": {"input": "rgb"},
            "image_size": SIZE,
            "threshold": 0.5,
            "state_dict": model.state_dict(),
            "trained": {
                "epochs": 1,
                "best_epoch": 1,
                "best_val_loss": 0.3,
                "seed": 0,
                "device": "cpu",
                "precision": "fp32",
                "eval_precision": "fp32",
            },
            "class_names": ["real", "ai"],
            "preprocess": {
                "size": SIZE,
                "fit": "crop",
                "jpeg_quality": 90,
                "max_pixels": 50_000_000,
                "resample": 1.07,
                "resample_jitter": 0.0,
                "mean": MEAN,
                "std": STD,
            },
            "data_profile": "demo",
            "versions": artifact.versions(),
        },
        path,
    )
    message = refusal(path)
    assert "format 1" in message and "re-train it with `dvc repro`" in message


@pytest.mark.parametrize("version", [None, 3, "2"], ids=["missing", "newer", "text"])
def test_other_format_versions_are_refused(tmp_path: Path, version: Any) -> None:
    path = tmp_path / "model.pt"
    drop = ("format_version",) if version is None else ()
    changes = {} if version is None else {"format_version": version}
    torch.save(stored(make_artifact(), drop, **changes), path)
    assert "re-train" in refusal(path)


def grown_weights() -> dict[str, Any]:
    """A 64 px recipe with the 40 px seed_cnn's weights: the head does not fit."""
    return {"preprocess": synthetic_recipe(64).model_dump()}


@pytest.mark.parametrize(
    ("drop", "changes", "expected"),
    [
        pytest.param((), {"threshold": 1.5}, "threshold: is 1.5", id="threshold-1.5"),
        pytest.param((), {"threshold": 0.0}, "threshold: is 0.0", id="threshold-0"),
        pytest.param(("preprocess",), {}, "preprocess: missing", id="no-preprocess"),
        pytest.param((), {"arch": "vgg16"}, "arch: is 'vgg16'", id="unknown-arch"),
        pytest.param((), {"input": "hsv"}, "input: is 'hsv'", id="unknown-input"),
        pytest.param(
            (),
            {"image_size": 64},
            "card: image_size 64 != preprocess.size",
            id="image-size-not-preprocess-size",
        ),
        pytest.param((), {"mean": 0.4}, "card: class names, mean or std differ", id="other-mean"),
        pytest.param(
            (),
            {"preprocess": {**synthetic_recipe().model_dump(), "mean": 0.5}},
            "preprocess.mean",
            id="mean-inside-preprocess",
        ),
        pytest.param((), {"arch_args": {"input": "rgb"}}, "arch_args", id="unknown-key"),
        pytest.param(("trained",), {}, "trained: missing", id="no-trained"),
    ],
)
def test_a_card_that_breaks_the_schema_is_one_line(
    tmp_path: Path, drop: tuple[str, ...], changes: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "model.pt"
    torch.save(stored(make_artifact("seed_cnn"), drop, **changes), path)
    message = refusal(path)
    assert message.startswith(f"{path}: {expected}"), message
    assert message.endswith("re-train it with `dvc repro`"), message


@pytest.mark.parametrize(
    ("drop", "changes"),
    [
        pytest.param((), grown_weights(), id="weights-for-another-size"),
        pytest.param((), {"arch": "gap_cnn"}, id="weights-of-another-arch"),
        pytest.param(("state_dict",), {}, id="no-weights"),
    ],
)
def test_weights_that_do_not_fit_the_arch_are_one_line(
    tmp_path: Path, drop: tuple[str, ...], changes: dict[str, Any]
) -> None:
    path = tmp_path / "model.pt"
    torch.save(stored(make_artifact("seed_cnn"), drop, **changes), path)
    message = refusal(path)
    assert "is not a usable sneakers model" in message and message.endswith("re-train it")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda: build_model("gap_cnn", SIZE).state_dict(), id="plain-state-dict"),
        pytest.param(lambda: {"arch": "gap_cnn", "threshold": 0.5}, id="dict-without-tag"),
        pytest.param(lambda: {"format": "someone-elses-model"}, id="wrong-tag"),
        pytest.param(lambda: [torch.zeros(2)], id="list"),
    ],
)
def test_torch_files_that_are_not_a_model_file_are_refused(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "other.pt"
    torch.save(content(), path)
    assert "not a sneakers model file" in refusal(path)


@pytest.mark.parametrize(
    "data", [b"", b"not a model at all\n" * 10, bytes(range(256)) * 4], ids=["empty", "text", "bin"]
)
def test_garbage_files_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    message = refusal(path)
    assert "not a sneakers model file (not a PyTorch file, or a damaged one)" in message, message
    assert "weights_only" not in message


def test_a_folder_as_model_is_one_line(tmp_path: Path) -> None:
    assert refusal(tmp_path).startswith(f"{tmp_path} is a folder: name a model file")


def test_a_model_file_from_before_min_size_loads_with_merges_default(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(stored(make_artifact("seed_cnn"), ("min_size",)), path)
    card = artifact.load(path, CPU)[0].card
    assert (card.min_size, card.smallest_side()) == (None, MIN_SIZE)
    artifact.save(path, make_artifact("seed_cnn", min_size=100))
    card = artifact.load(path, CPU)[0].card
    assert (card.min_size, card.smallest_side()) == (100, 100)


def test_a_model_file_from_before_backbones_trained_all_of_itself(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(stored(make_artifact("seed_cnn"), ("part", "pool")), path)
    card = artifact.load(path, CPU)[0].card
    assert (card.part, card.pool) == ("all", "mean")


def test_a_model_file_that_also_holds_image_size_loads(tmp_path: Path) -> None:
    """Format 2 files written before the recipe alone kept the size hold it twice; one whose
    image_size is not the recipe's is refused (test_a_card_that_breaks_the_schema_is_one_line)."""
    original, path = make_artifact("seed_cnn"), tmp_path / "model.pt"
    torch.save(stored(original, image_size=SIZE), path)
    loaded, _ = artifact.load(path, CPU)
    assert loaded.card == original.card and loaded.card.image_size == SIZE
    artifact.save(path, loaded)
    assert "image_size" not in torch.load(path, map_location="cpu", weights_only=True)


def test_weights_trained_at_another_size_than_the_recipe_make_no_model_file() -> None:
    model = model_like_trained("seed_cnn", SIZE)
    fitted = Fitted(model.state_dict(), SIZE, 0.5, trained_record())
    with pytest.raises(ValueError, match=f"image_size {SIZE} != preprocess.size"):
        Artifact.of(fitted, ModelSettings(arch="seed_cnn"), synthetic_recipe(64), "x")


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path: Path, writer: str) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    payload = {**stored(make_artifact()), "boom": WritesMarker(marker)}
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

    message = refusal(path)
    assert "not a sneakers model file: loading it would run Python code" in message, message
    assert "weights_only" not in message and "trust" not in message  # never advise running it
    assert not marker.exists()


def test_a_pickled_module_is_refused_without_advice_to_load_it_unsafely(tmp_path: Path) -> None:
    path = tmp_path / "whole-model.pt"
    torch.save(build_model("seed_cnn", SIZE), path)  # the whole module, not a state dict
    message = refusal(path)
    assert "would run Python code (sneakers.model.SeedCNN)" in message, message
    assert "weights_only" not in message and message.endswith("after `dvc repro`)")


def test_a_missing_model_points_to_dvc_repro(tmp_path: Path) -> None:
    path = tmp_path / "models" / "model.pt"
    message = refusal(path)
    assert message.startswith(f"no model at {path}") and "dvc repro" in message
