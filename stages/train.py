"""Stage train: fit the CNN on the train split, keep the best epoch, write models/model.pt."""

from dataclasses import asdict
from pathlib import Path

from dvclive import Live
from sneakers.data import CLASS_NAMES, MEAN, STD, add_simulated, load_splits
from sneakers.errors import run_main
from sneakers.inference import resolve_device, save_artifact, versions
from sneakers.params import load_params, section, settings_from
from sneakers.perturb import AugmentSettings
from sneakers.standardize import StandardizeSettings
from sneakers.train import ModelSettings, TrainSettings, train


def main() -> None:
    params = load_params()
    model = ModelSettings.from_params(section(params, "model"))
    settings = TrainSettings.from_params(section(params, "train"))
    augment = settings_from(AugmentSettings, section(params, "augment"), "augment")
    resolve_device(settings.device)  # a missing GPU is reported before any data is read
    splits = load_splits(Path("data/standardized"), Path("data/split/split.csv"))
    splits["train"] = add_simulated(splits["train"], Path("data/simulated"))
    with Live("dvclive/train", dvcyaml=False, save_dvc_exp=False, report=None) as live:
        artifact = train(splits, model.arch, settings, params["seed"], live, augment,
                         model.arch_args())  # fmt: skip
    standardize = StandardizeSettings.from_params(section(params, "standardize"))
    recipe = standardize.recipe(section(params, "merge")["max_pixels"])
    artifact.update(
        class_names=list(CLASS_NAMES),
        preprocess={
            **asdict(recipe),
            "mean": MEAN,
            "std": STD,
        },
        data_profile=section(params, "data")["profile"],
        versions=versions(),
    )
    save_artifact(Path("models/model.pt"), artifact)
    print(f"train: best epoch {artifact['trained']['best_epoch']}, "
          f"threshold {artifact['threshold']:.3f} -> models/model.pt")  # fmt: skip


if __name__ == "__main__":
    run_main(main)
