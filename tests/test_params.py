"""params.yaml is one typed config: every mistake a user can make in it is one SneakersError
line, `<section>.<key>: <what> (<fix>)`, whatever the section or the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from pydantic import BaseModel

from sneakers.errors import SneakersError
from sneakers.params import (
    DemoPhotos,
    DemoSource,
    KaggleSource,
    ModelSettings,
    Params,
    PathSource,
    load_params,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((ROOT / "params.yaml").read_text())

PHOTOS = {"name": "photos", "demo": {"kind": "photos", "count": 3}, "label": "real"}
LOCAL = {"name": "local", "path": "pictures", "labels": {"real": "real", "fake": "ai"}}
KAGGLE = {"name": "kg", "kaggle": "owner/slug/versions/3", "label": "ai", "brand": "prefix"}


def changed(dotted: str, value: Any) -> dict[str, Any]:
    """The repository's params with one key set (`data.profiles.demo.0.label`); DELETE drops it."""
    params = copy.deepcopy(BASE)
    *parents, last = dotted.split(".")
    here: Any = params
    for key in parents:
        here = here[int(key)] if key.isdigit() else here[key]
    index = int(last) if last.isdigit() else last
    if value is DELETE:
        del here[index]
    else:
        here[index] = value
    return params


DELETE = object()


def error_of(params: dict[str, Any]) -> str:
    """The one line validate() gives for broken params."""
    with pytest.raises(SneakersError) as info:
        validate(params)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def with_profile(*entries: dict[str, Any]) -> dict[str, Any]:
    params = copy.deepcopy(BASE)
    params["data"]["profiles"]["mine"] = list(entries)
    params["data"]["profile"] = "mine"
    return params


# --- what must parse ---


def test_the_repository_params_validate_for_every_profile() -> None:
    """The shipped params.yaml must stay valid for demo, shared and kaggle alike."""
    assert {"demo", "shared", "kaggle"} <= set(BASE["data"]["profiles"])
    for name, entries in BASE["data"]["profiles"].items():
        sources = validate(changed("data.profile", name)).data.sources()
        assert [s.name for s in sources] == [e["name"] for e in entries]
        assert all(s.label or s.labels for s in sources)


def test_valid_profile_parses_every_kind() -> None:
    sources = validate(with_profile(PHOTOS, LOCAL, KAGGLE)).data.sources()
    assert sources == [
        DemoSource(name="photos", demo=DemoPhotos(kind="photos", count=3), label="real"),
        PathSource(name="local", path="pictures", labels={"real": "real", "fake": "ai"}),
        KaggleSource(name="kg", kaggle="owner/slug/versions/3", label="ai", brand="prefix"),
    ]
    assert [s.kind for s in sources] == ["demo", "path", "kaggle"]
    assert sources[1].role == "train"  # the default


def test_load_params_reads_the_file_and_keeps_defaults(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    params = changed("train", {"epochs": 7})
    path.write_text(yaml.safe_dump(params))
    loaded = load_params(path)
    assert loaded.train.epochs == 7 and loaded.train.batch_size == 32  # the rest: defaults
    assert loaded.model_dump()["runtime"] == BASE["runtime"]


def test_the_recipe_is_the_picture_settings_and_merges_largest_picture() -> None:
    """The one place the preprocessing recipe is built: what the stages and the model file use."""
    params = validate(changed("standardize.size", 64))
    recipe = params.recipe()
    assert recipe == params.standardize.recipe(params.merge.max_pixels)
    assert recipe.size == 64 and recipe.max_pixels == params.merge.max_pixels
    assert recipe.model_dump() == {
        **params.standardize.picture_settings(),
        "max_pixels": params.merge.max_pixels,
    }


def test_load_params_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(SneakersError, match="not found: run from the project root"):
        load_params(tmp_path / "params.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(SneakersError, match="is not valid YAML") as info:
        load_params(broken)
    assert "\n" not in str(info.value)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(SneakersError, match="must be a mapping of sections"):
        load_params(listed)


# --- every kind of mistake, in one line ---

BAD: list[tuple[str, Any, str]] = [
    # the list
    ("augment.crop", -1, "augment.crop: is -1 (use more than 0"),
    ("augment.p_jpeg", 7, "augment.p_jpeg: is 7 (use at most 1"),
    ("augment.jpeg_quality", [1, 2, 3], "augment.jpeg_quality: has 3 entries (it takes at most 2)"),
    ("augment.blur_sigma", ["a"], "augment.blur_sigma[0]: must be a number, not 'a'"),
    (
        "data.profiles.demo.0.demo.count",
        "many",
        "data.profiles.demo[0].demo.count: must be a whole number, not 'many'",
    ),
    # wrong type
    ("train.lr", "fast", "train.lr: must be a number, not 'fast'"),
    ("merge.near_threshold", "4", "merge.near_threshold: must be a whole number, not '4'"),
    ("train.epochs", 2.5, "train.epochs: must be a whole number, not 2.5"),
    ("train.precise_bn", "yes", "train.precise_bn: must be true or false, not 'yes'"),
    ("seed", True, "seed: must be a whole number, not True"),
    ("data.brands", "nike", "data.brands: must be a list, not 'nike'"),
    ("train", None, "train: must be a mapping of keys, not empty"),
    ("data.profiles.demo.0", "photos", "data.profiles.demo[0]: needs exactly one of kaggle:"),
    # out of range, and bad choices
    ("standardize.size", 16, "standardize.size: is 16 (use at least 36)"),
    ("standardize.jpeg_quality", 101, "standardize.jpeg_quality: is 101 (use at most 100)"),
    ("data.archive.max_bytes", 0, "data.archive.max_bytes: is 0 (use at least 1)"),
    ("train.threshold", 1.5, "train.threshold: is 1.5 (use val, val_fpr, val_generator or a"),
    ("train.threshold", "best", "train.threshold: is 'best' (use val, val_fpr"),
    ("train.target_fpr", 1.0, "train.target_fpr: is 1.0 (use less than 1"),
    ("train.memory_gb", -1, "train.memory_gb: is -1 (use at least 0"),
    ("audit.control_scale", 1, "audit.control_scale: is 1 (use more than 1"),
    (
        "model.arch",
        "resnet",
        "model.arch: is 'resnet' (use 'seed_cnn', 'gap_cnn', 'resnet18', "
        "'efficientnet_lite0', 'efficientnet_lite1' or 'efficientnet_lite2')",
    ),
    (
        "standardize.fit",
        "zoom",
        "standardize.fit: is 'zoom' (use 'crop', 'pad', 'stretch' or 'native')",
    ),
    ("train.balance", "source", "train.balance: is 'source' (use 'label' or 'generator')"),
    ("train.generators", "some", "train.generators: is 'some' (use all, or a list of"),
    ("train.generators", [], "train.generators: is [] (use all, or a list of generators"),
    ("data.profiles.demo.1.group", "input_image(", "data.profiles.demo[1].group: 'input_image('"),
    (
        "data.profiles.demo.0.generator",
        "dalle2",
        "data.profiles.demo[0]: demo-photos has no ai pictures: generator names the maker",
    ),
    ("train.optimizer", "lion", "train.optimizer: is 'lion'"),
    ("train.precision", "fp16", "train.precision: is 'fp16' (use 'auto', 'fp32' or 'bf16')"),
    ("runtime.precision", "half", "runtime.precision: is 'half'"),
    ("runtime.device", "gpu", "runtime.device: is 'gpu' (use 'auto', 'cpu' or 'cuda')"),
    ("data.profiles.demo.0.label", "fake", "data.profiles.demo[0].label: is 'fake' (use 'real'"),
    ("data.profiles.demo.2.labels.real", "AI", "data.profiles.demo[2].labels.real: is 'AI'"),
    ("data.profiles.demo.0.brand", "suffix", "data.profiles.demo[0].brand: is 'suffix'"),
    ("data.profiles.demo.3.role", "test", "data.profiles.demo[3].role: is 'test'"),
    (
        "data.profiles.demo.0.demo.kind",
        "videos",
        "data.profiles.demo[0].demo: needs kind: photos, renders or compiled",
    ),
    # wrong length
    ("simulate.scales", [], "simulate.scales: has 0 entries (it needs at least 1)"),
    ("augment.resize_scale", [0.5], "augment.resize_scale: has 1 entries (it needs at least 2)"),
    ("augment.jpeg_quality", [90, 30], "augment.jpeg_quality: [90, 30] runs backwards"),
    ("data.profiles.demo", [], "data.profiles.demo: has 0 entries (it needs at least 1)"),
    # unknown and missing keys
    ("train.epoch", 5, "train: unknown key(s) epoch (known: epochs, batch_size"),
    ("trian", {}, "params.yaml: unknown key(s) trian (known: seed, data"),
    ("data.profiles.demo.0.lable", "ai", "data.profiles.demo[0]: unknown key(s) lable"),
    ("seed", DELETE, "seed: missing (add it to params.yaml"),
    ("runtime", DELETE, "runtime: missing (add it to params.yaml"),
    ("data.profiles.demo.0.name", DELETE, "data.profiles.demo[0].name: missing"),
    # rules across keys
    ("data.profile", "kagle", "data.profile: 'kagle' is not in data.profiles (known: demo, shared"),
    (
        "data.profiles.demo.1.name",
        "demo-photos",
        "data.profiles.demo: duplicate source name(s) demo-photos",
    ),
    ("data.profiles.demo.0.name", "../up", "data.profiles.demo[0].name: '../up' is not a folder-"),
    (
        "data.profiles.kaggle.0.kaggle",
        "owner/slug",
        "data.profiles.kaggle[0].kaggle: 'owner/slug' is not pinned "
        "(write owner/dataset/versions/N)",
    ),
    ("data.profiles.demo.0.path", "x", "data.profiles.demo[0]: needs exactly one of kaggle:"),
    ("data.profiles.demo.0.labels", {"x": "real"}, "demo-photos needs either label: real|ai or"),
    ("split.fractions.val", 0.3, "split.fractions: sum to 1.1 (make them sum to 1)"),
    ("split.fractions", {"train": 1.0}, "split.fractions: needs positive train, val and test"),
    ("split.fractions.val", -0.2, "split.fractions.val: is -0.2 (use more than 0"),
    ("split.fractions.holdout", 0.1, "split.fractions.holdout: is 'holdout'"),
    ("simulate.patch", 30, "simulate.patch: 30 is not a multiple of 2**depth (4)"),
    (
        "train.nproc_per_node",
        3,
        "train.batch_size: 32 does not divide by train.nproc_per_node 3: "
        "each process takes an equal share of the global batch (use 30 or 33)",
    ),
    # what numpy and scikit-learn take as a seed
    ("seed", 2**32, "seed: is 4294967296 (use at most 4294967295)"),
    # YAML 1.1 reads 1e-3 as text: say so, and how to write it
    (
        "train.lr",
        "1e-3",
        "train.lr: must be a number: YAML reads 1e-3 as text (write 1.0e-3 or 0.001)",
    ),
    (
        "simulate.lr",
        "2E-7",
        "simulate.lr: must be a number: YAML reads 2E-7 as text (write 2.0e-7)",
    ),
    (
        "augment.color",
        "1.0e3",
        "augment.color: must be a number: YAML reads 1.0e3 as text (write 1.0e+3 or 1000.0)",
    ),
    ("train.threshold", "5e-1", "train.threshold: must be a number: YAML reads 5e-1 as text"),
    (
        "train.epochs",
        "1e3",
        "train.epochs: must be a whole number: YAML reads 1e3 as text (write 1000)",
    ),
    ("train.epochs", "1e-3", "train.epochs: must be a whole number, not 1e-3 (e.g. 4)"),
    ("train.lr", "0.5", "train.lr: must be a number, not '0.5' (e.g. 0.5, no quotes)"),
    ("train.lr", "1.0e-3", "train.lr: must be a number, not '1.0e-3' (e.g. 0.5, no quotes)"),
    # empty, null, infinite, and wrong shapes where pydantic has its own words
    (
        "data.profiles.shared.0.path",
        "",
        "data.profiles.shared[0].path: is empty (write the folder or .zip file to read)",
    ),
    ("data.brands", ["nike", ""], "data.brands[1]: is empty (write a name, or remove the entry)"),
    (
        "data.profiles.demo.2.labels",
        {"": "real", "ai": "ai"},
        "data.profiles.demo[2].labels['']: is empty (write a name, or remove the entry)",
    ),
    ("train.lr", None, "train.lr: must be a number, not empty (e.g. 0.5)"),
    ("data.profiles.demo.3.role", None, "data.profiles.demo[3].role: is empty (use 'train'"),
    ("train.lr", float("inf"), "train.lr: must be a finite number, not inf (e.g. 0.5)"),
    ("train.memory_gb", float("nan"), "train.memory_gb: must be a finite number, not nan"),
    (
        "data.profiles.demo.0.demo.kind",
        ["photos"],
        "data.profiles.demo[0].demo: needs kind: photos, renders or compiled",
    ),
    (
        "data.profiles.demo.0.demo",
        {"kind": {"a": 1}},
        "data.profiles.demo[0].demo: needs kind: photos, renders or compiled",
    ),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_each_mistake_is_one_line_naming_the_key(key: str, value: Any, expected: str) -> None:
    message = error_of(changed(key, value))
    assert expected in message, message


def test_a_profile_needs_a_source_to_train_on() -> None:
    shop = {"name": "shop", "path": "x", "label": "real", "role": "eval"}
    assert "data.profiles.mine: has only role: eval sources" in error_of(with_profile(shop))


@pytest.mark.parametrize("label", ["real", "ai"])
def test_a_profile_needs_both_labels_to_train_on(label: str) -> None:
    """Only real (or only AI) pictures would train a detector that scores 1.0 and knows nothing."""
    one = {**PHOTOS, "label": label}
    held = {
        "name": "shop",
        "path": "x",
        "label": "ai" if label == "real" else "real",
        "role": "eval",
    }
    message = error_of(with_profile(one, held))
    assert message.startswith(f"data.profiles.mine: trains on {label} pictures only"), message
    assert error_of(with_profile({**LOCAL, "labels": {"fake": label}})).startswith(
        f"data.profiles.mine: trains on {label} pictures only"
    )
    validate(with_profile(one, {**LOCAL, "labels": {"x": "real", "y": "ai"}}))  # both: fine


def test_every_batch_size_that_divides_among_the_processes_is_kept() -> None:
    params = changed("train", {"batch_size": 33, "nproc_per_node": 3})
    assert validate(params).train.batch_size == 33


def test_a_backbones_settings_leave_other_networks_whole_with_a_note() -> None:
    cnn = ModelSettings(arch="seed_cnn", train="head", pool="blocks")
    assert (cnn.part, cnn.pooling) == ("all", "mean")
    assert "seed_cnn trains all of itself" in cnn.ignored()
    lite = ModelSettings(arch="efficientnet_lite0", train="head", pool="blocks")
    assert (lite.part, lite.pooling, lite.ignored()) == ("head", "blocks", None)
    assert ModelSettings(arch="gap_cnn").ignored() is None


def test_the_largest_seed_numpy_takes_is_kept() -> None:
    assert validate(changed("seed", 2**32 - 1)).seed == 2**32 - 1


def test_a_bad_inactive_profile_is_reported_too() -> None:
    """Every key of the file is checked, not only the active profile's."""
    params = changed("data.profiles.kaggle.0.kaggle", "owner/slug")
    assert params["data"]["profile"] == "demo"
    assert error_of(params).startswith("data.profiles.kaggle[0].kaggle:")


# --- every key of every section, by kind: derived from the models, so new keys are covered ---


def leaf_keys() -> list[tuple[str, Any]]:
    """(dotted key, field) of every scalar or list key of every section."""
    found = []
    for name, field in Params.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            found.append((name, field))
            continue
        for key, inner in model.model_fields.items():
            if not (isinstance(inner.annotation, type) and issubclass(inner.annotation, BaseModel)):
                found.append((f"{name}.{key}", inner))
    return [(k, f) for k, f in found if k in flat(BASE)]


def flat(values: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in values.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= flat(value, f"{prefix}{key}.")
    return keys


LEAVES = leaf_keys()


def test_the_sweeps_cover_every_section() -> None:
    assert {key.split(".")[0] for key, _ in LEAVES} == set(Params.model_fields)
    assert len(LEAVES) >= 50 and len(RANGES) >= 40


@pytest.mark.parametrize("key", [k for k, _ in LEAVES])
def test_every_key_refuses_a_wrong_type(key: str) -> None:
    """A mapping where a value belongs: no key's type accepts {"a": 1} as written."""
    assert error_of(changed(key, {"a": 1})).startswith(key)


def bounds(field: Any) -> list[tuple[float, str]]:
    """A value just outside each numeric bound of a field, and the words the error uses."""
    out = []
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            out.append((rule.ge - 1, "at least"))
        elif isinstance(rule, annotated_types.Gt):
            out.append((rule.gt, "more than"))
        elif isinstance(rule, annotated_types.Le):
            out.append((rule.le + 1, "at most"))
        elif isinstance(rule, annotated_types.Lt):
            out.append((rule.lt, "less than"))
    return out


RANGES = [(key, value, words) for key, field in LEAVES for value, words in bounds(field)]


@pytest.mark.parametrize(("key", "value", "words"), RANGES, ids=[f"{k}={v}" for k, v, _ in RANGES])
def test_every_bounded_key_refuses_a_value_out_of_range(key: str, value: Any, words: str) -> None:
    message = error_of(changed(key, value))
    assert message.startswith(f"{key}: is {value!r} (use {words}"), message
