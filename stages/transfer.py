"""Stage transfer: leave-one-generator-out fits of the head on the features stage's cache,
metrics/transfer.json and the matrix "trained on X -> detects Y" (sneakers.transfer)."""

from sneakers.data import add_simulated, generator_masks, generators_in, load_splits
from sneakers.errors import run_main
from sneakers.features import fill, trunk_and_store
from sneakers.files import write_json
from sneakers.params import load_params
from sneakers.paths import (
    FEATURES,
    SIMULATED,
    SPLIT,
    STANDARDIZED,
    TRANSFER_FIGURES,
    TRANSFER_METRICS,
)
from sneakers.plots import transfer_png
from sneakers.transfer import leave_one_out

FIGURE = TRANSFER_FIGURES / "matrix.png"


def main() -> None:
    params = load_params()
    model_settings, runtime = params.model, params.runtime
    if model_settings.part != "head":
        note = (
            f"model.train {model_settings.part} trains the trunk: leave-one-generator-out refits "
            "a head on cached features, so it needs model.train: head"
        )
        write_json(TRANSFER_METRICS, {"skipped": note})
        transfer_png({}, FIGURE, note)
        print(f"transfer: skipped: {note}")
        return
    model, store, device, precision = trunk_and_store(
        model_settings, runtime, params.standardize.size, FEATURES
    )
    splits = load_splits(STANDARDIZED, SPLIT)
    splits["train"] = add_simulated(splits["train"], SIMULATED)
    embedded = fill(
        model, store, splits, {}, params.augment, params.seed, device, precision, runtime.batch_size
    )
    keep = generator_masks(splits, params.train.generators)
    generators = generators_in(splits["train"].take(keep["train"]))
    metrics = leave_one_out(model, splits, embedded, generators, params.train, params.seed)
    metrics["features"] = {"read": store.read, "computed": store.computed}
    write_json(TRANSFER_METRICS, metrics)
    transfer_png(metrics, FIGURE)
    print(
        f"transfer: {metrics['fits']} fits on {len(generators)} generators in "
        f"{metrics['seconds']} s ({store.read} features read, {store.computed} "
        "computed)"
    )
    for name, row in metrics["leave_one_out"].items():
        print(
            f"transfer: without {name}: detects {row['detection_rate']:.3f} of its {row['n']} "
            f"pictures, roc_auc {row['roc_auc']:.3f}, real test called AI "
            f"{row['real_test_fpr']:.3f}"
        )


if __name__ == "__main__":
    run_main(main)
