"""The `sneakers` command: score images with a trained model, or describe a model file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import torch

from sneakers import artifact
from sneakers.artifact import Card
from sneakers.backbones import WEIGHTS
from sneakers.errors import run_main
from sneakers.inference import DEVICES, PRECISIONS
from sneakers.model import EfficientNetLite, count_parameters
from sneakers.params import RuntimeSettings
from sneakers.predict import run
from sneakers.predict_output import OUTPUT_FORMATS

STANDARD_MODEL = Path("models/model.pt")
EVAL_METRICS = Path("metrics/eval.json")  # written by the evaluate stage beside models/

INFO_HELP = f"""\
Shows what a model file holds (architecture, threshold, preprocessing, training run, library
versions), without its weights. When MODEL is {STANDARD_MODEL} (the default), it also shows the
test metrics of that model from {EVAL_METRICS}, read relative to the current directory (run it
from the project root), if that file exists and was written for this model (its threshold
matches); otherwise they are left out."""

PREDICT_HELP = """\
Scores each image the way the pipeline prepared its training data: the standardize stage's
preprocessing with the settings stored in the model, then the model, in batches. Prints one row
per file (path, P(ai), label, error) and a summary on stderr. Exit status: 0 every file scored,
2 some could not be scored (their rows say why) or a heatmap could not be written (a note says
why), 1 usage error. Nothing is ever overwritten but --output FILE itself."""


class Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one `error: ...` line and exit status 1."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(1)


def info(path: Path) -> dict[str, Any]:
    """What a model file holds, without its weights (plus its test metrics, where known)."""
    loaded, model = artifact.load(path, torch.device("cpu"))
    fields = loaded.card.model_dump(exclude={"format", "format_version"})
    # The size lives in the recipe; shown beside the architecture, where users look for it.
    arch = {key: fields.pop(key) for key in ("arch", "input")}
    card = {**arch, "image_size": loaded.card.image_size, **fields}
    total = sum(p.numel() for p in model.parameters())
    return {
        "model": str(path),
        "parameters": total,
        **backbone(loaded.card, model),
        **card,
        **eval_metrics(path, loaded.card),
    }


TRAINED = {
    "head": "the linear head only, on the frozen ImageNet trunk's pooled features",
    "top": f"the last {EfficientNetLite.TOP_BLOCKS} blocks, the head convolution and the head",
    "all": "every layer, starting from the ImageNet weights",
}


def backbone(card: Card, model: torch.nn.Module) -> dict[str, Any]:
    """For a model on a pretrained backbone: which, its weights' package and sha256, and what
    of it was trained."""
    if card.backbone_sha256 is None:
        return {}
    return {
        "backbone": {
            "arch": card.arch,
            "package": WEIGHTS[card.arch].package,
            "weights_sha256": card.backbone_sha256,
            "pool": card.pool,
            "trained": f"{card.part}: {TRAINED[card.part]}",
            "trained_parameters": count_parameters(model),
        }
    }


def eval_metrics(path: Path, card: Card) -> dict[str, Any]:
    """The `test` section of metrics/eval.json, for the standard model path only, and only when
    the file is for this model: the evaluate stage records the model's threshold there."""
    if path != STANDARD_MODEL or not EVAL_METRICS.is_file():
        return {}
    try:
        test = json.loads(EVAL_METRICS.read_text())["test"]
        threshold = test["threshold"]
    except (OSError, ValueError, KeyError, TypeError):
        return {"test_metrics_note": f"{EVAL_METRICS} is unreadable: run `dvc repro evaluate`"}
    if threshold != card.threshold:
        return {
            "test_metrics_note": f"{EVAL_METRICS} is for another model (its threshold "
            "differs): run `dvc repro` to evaluate this one"
        }
    return {"test_metrics_file": str(EVAL_METRICS), "test_metrics": test}


def probability(text: str) -> float:
    value = float(text)  # argparse turns a ValueError into "invalid probability value"
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def build_parser() -> Parser:
    parser = Parser(prog="sneakers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict", help="score image files, folders or glob patterns", description=PREDICT_HELP
    )
    predict.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files, folders (recursive, sorted; OS junk and hidden files are skipped, links "
        "out of the folder are not followed) or glob patterns (quoted work too, ** included)",
    )
    predict.add_argument(
        "--model", type=Path, default=STANDARD_MODEL, help="model file (default: %(default)s)"
    )
    predict.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default="table",
        help="output format (default: %(default)s)",
    )
    predict.add_argument(
        "--output", type=Path, metavar="FILE", help="write the rows to FILE instead of stdout"
    )
    predict.add_argument(
        "--threshold",
        type=probability,
        metavar="T",
        help="P(ai) at or above which a file is labelled ai "
        "(default: the model's own, fixed on validation data)",
    )
    runtime = RuntimeSettings()  # the defaults of the pipeline's runtime section
    predict.add_argument(
        "--device",
        choices=DEVICES,
        default=runtime.device,
        help="auto uses CUDA when available (default: %(default)s)",
    )
    predict.add_argument(
        "--batch-size",
        type=positive_int,
        default=runtime.batch_size,
        metavar="N",
        help="images per forward pass (default: %(default)s)",
    )
    predict.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=runtime.precision,
        help="auto: bf16 where the hardware computes it (CUDA, AMX-BF16 or "
        "AVX512-BF16 CPUs), fp32 elsewhere (default: %(default)s)",
    )
    predict.add_argument(
        "--explain",
        type=Path,
        metavar="DIR",
        help="also write a Grad-CAM heatmap overlay of each scored file into DIR "
        "(its path under DIR, as .png; a name already taken gets -2, -3, ...): "
        "where the model looked",
    )

    info_parser = commands.add_parser(
        "info", help="describe a trained model file", description=INFO_HELP
    )
    info_parser.add_argument(
        "model",
        type=Path,
        nargs="?",
        default=STANDARD_MODEL,
        metavar="MODEL",
        help="model file (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "info":
        run_main(lambda: print(json.dumps(info(args.model), indent=2)))
    else:
        run_main(lambda: predict_command(args))


def predict_command(args: argparse.Namespace) -> None:
    runtime = RuntimeSettings(
        device=args.device, precision=args.precision, batch_size=args.batch_size
    )
    code = run(
        args.paths, args.model, args.format, args.output, args.threshold, runtime, args.explain
    )
    if code:
        raise SystemExit(code)  # passes through run_main, which only turns errors into status 1


if __name__ == "__main__":  # `python -m sneakers.cli`, as well as the `sneakers` command
    main()
