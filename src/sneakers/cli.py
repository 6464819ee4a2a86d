"""The `sneakers` command: inspect trained models (prediction arrives with `sneakers predict`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sneakers.errors import run_main
from sneakers.inference import load_artifact, model_from_artifact
from sneakers.model import count_parameters


def info(path: Path) -> dict:
    """What a model file holds, without its weights."""
    artifact = load_artifact(path)
    model = model_from_artifact(artifact, torch.device("cpu"))
    keep = ("arch", "image_size", "threshold", "class_names", "preprocess", "trained",
            "data_profile", "versions")  # fmt: skip
    return {"model": str(path), "parameters": count_parameters(model),
            **{k: artifact.get(k) for k in keep}}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sneakers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    info_parser = commands.add_parser("info", help="describe a trained model file")
    info_parser.add_argument("model", type=Path, nargs="?", default=Path("models/model.pt"))
    args = parser.parse_args(argv)
    run_main(lambda: print(json.dumps(info(args.model), indent=2)))
