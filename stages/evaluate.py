"""Stage evaluate: metrics/eval.json, plot data for `dvc plots show`, and PNG figures."""

import json
import time

from sneakers import artifact
from sneakers.data import cache, load_splits
from sneakers.errors import run_main
from sneakers.evaluate import SCORED, evaluate
from sneakers.explain import heatmaps_png
from sneakers.features import Cached, FeatureStore, trunk_id
from sneakers.files import read_csv, write_json
from sneakers.history import dominant_histories
from sneakers.inference import Scorer, device_label, resolve_device, resolve_precision
from sneakers.params import load_params
from sneakers.paths import (
    EVAL_METRICS,
    FEATURES,
    FIGURES,
    MANIFEST,
    MODEL,
    PLOTS,
    SPLIT,
    STANDARDIZED,
    TRAIN_SUMMARY,
)
from sneakers.plots import (
    confusion_png,
    samples_png,
    worst_png,
    write_cross_source_data,
    write_generator_data,
    write_history_data,
    write_plot_data,
    write_robustness_data,
)


def main() -> None:
    started = time.perf_counter()
    params = load_params()
    runtime = params.runtime
    device = resolve_device(runtime.device)
    precision = resolve_precision(runtime.precision, device)
    model, network = artifact.load(MODEL, device)
    card = model.card
    scored, store = network, None
    if card.part == "head":  # the features stage's cache of the same frozen trunk
        store = FeatureStore(FEATURES, trunk_id(network, card.arch, device, precision))
        scored = Cached(network, store)
    scorer = Scorer(scored, device, runtime.batch_size, precision)
    splits = load_splits(STANDARDIZED, SPLIT, SCORED)
    cache(splits)  # robustness and history perturb test images in memory
    histories = dominant_histories(read_csv(MANIFEST))
    metrics, predictions, explained = evaluate(
        scorer, card, splits, params.seed, histories, network
    )
    if store is not None:
        print(
            f"evaluate: features of {store.read} pictures read from {store.folder}, "
            f"{store.computed} computed"
        )
    train_summary = json.loads(TRAIN_SUMMARY.read_text())
    metrics["run"] = {
        "device": device_label(device),
        "arch": card.arch,
        "epochs": card.trained.epochs,
        "best_epoch": card.trained.best_epoch,
        "train_seconds": train_summary.get("seconds"),
        "eval_seconds": round(time.perf_counter() - started, 1),
        "train_precision": card.trained.precision,
        "train_processes": card.trained.processes,
        "train_images_per_second": train_summary.get("images_per_second"),
        **metrics["run"],
        **{f"{k}_version": v for k, v in artifact.versions().items()},
    }
    write_json(EVAL_METRICS, metrics)
    write_plot_data(predictions, PLOTS)
    write_robustness_data(metrics["robustness"], PLOTS / "robustness.json")
    write_history_data(metrics["history"], PLOTS / "history.json")
    write_cross_source_data(metrics["cross_source"], PLOTS / "cross_source.json")
    write_generator_data(metrics["generators"], PLOTS / "generators.json")
    confusion_png(predictions, FIGURES / "confusion.png")
    samples_png(splits["test"], FIGURES / "samples.png")
    worst_png(splits["test"], predictions, FIGURES / "worst.png")
    heatmaps_png(explained, FIGURES / "heatmaps.png")
    test = metrics["test"]
    print(
        f"evaluate: test accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f}, "
        f"roc_auc {test['roc_auc']}"
    )
    for name, source in metrics["cross_source"].items():
        rates = [
            f"{k} {source[k]:.3f}" for k in ("false_positive_rate", "detection_rate") if k in source
        ]
        print(
            f"evaluate: eval source {name} (n={source['n']}): accuracy {source['accuracy']:.3f}, "
            + ", ".join(rates)
        )
    for name, made in metrics["generators"].items():
        auc = made["roc_auc_vs"]["test"]
        print(
            f"evaluate: generator {name} ({'seen' if made['seen'] else 'unseen'}, {made['in']}, "
            f"n={made['n']}): detected {made['detection_rate']:.3f}, roc_auc vs test reals "
            + (f"{auc:.3f}" if auc is not None else "n/a")
        )


if __name__ == "__main__":
    run_main(main)
