"""Stage features: a frozen backbone's features of every picture, kept in data/features.

Only for model.train head; other models train their trunk, so there is nothing to keep. The
folder persists between runs (dvc.yaml): a run computes only the pictures it has not seen with
this trunk (sneakers.features).
"""

from sneakers.data import add_simulated, cache, load_splits
from sneakers.errors import run_main
from sneakers.evaluate import history_batches, robustness_batches
from sneakers.features import fill, trunk_and_store
from sneakers.files import read_csv
from sneakers.history import dominant_histories
from sneakers.params import load_params
from sneakers.paths import FEATURES, MANIFEST, SIMULATED, SPLIT, STANDARDIZED


def main() -> None:
    params = load_params()
    model_settings, runtime = params.model, params.runtime
    FEATURES.mkdir(parents=True, exist_ok=True)
    if model_settings.part != "head":
        print(
            f"features: {model_settings.arch} trains {model_settings.part} of itself: "
            "no frozen trunk, nothing to keep"
        )
        return
    model, store, device, precision = trunk_and_store(
        model_settings, runtime, params.standardize.size, FEATURES
    )
    splits = load_splits(STANDARDIZED, SPLIT)
    splits["train"] = add_simulated(splits["train"], SIMULATED)
    cache(splits)
    recipe = params.recipe()
    histories = dominant_histories(read_csv(MANIFEST))
    conditions = robustness_batches(splits["test"], recipe)
    conditions |= {
        f"{k}_history": v for k, v in history_batches(splits["test"], recipe, histories).items()
    }
    fill(
        model,
        store,
        splits,
        conditions,
        params.augment,
        params.seed,
        device,
        precision,
        runtime.batch_size,
    )
    part = store.save()
    print(
        f"features: {store.read} read, {store.computed} computed with {store.folder.name}"
        + (f" -> {part}" if part else "")
    )


if __name__ == "__main__":
    run_main(main)
