"""The `sneakers` command line: `info` describes a model file; mistakes give one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sneakers.cli import main
from sneakers.inference import save_artifact
from sneakers.model import build_model, count_parameters


def test_info_describes_an_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = build_model("gap_cnn", 48)
    path = tmp_path / "model.pt"
    save_artifact(path, {"arch": "gap_cnn", "image_size": 48, "threshold": 0.4,
                         "state_dict": model.state_dict(), "data_profile": "demo"})  # fmt: skip
    main(["info", str(path)])
    shown = json.loads(capsys.readouterr().out)
    assert shown["parameters"] == count_parameters(model)
    assert (shown["arch"], shown["image_size"], shown["threshold"]) == ("gap_cnn", 48, 0.4)
    assert shown["data_profile"] == "demo"


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
