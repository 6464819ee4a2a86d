"""Stage train: fit the CNN on the train split, keep the best epoch, write models/model.pt.

With `train.nproc_per_node` above 1 the stage runs itself again under torchrun, one process per
rank; every rank reads params.yaml and the data itself, and only rank 0 logs and writes.
"""

from contextlib import nullcontext

from dvclive import Live
from sneakers import artifact, distributed
from sneakers.artifact import Artifact, Fitted
from sneakers.data import add_simulated, generator_masks, load_splits
from sneakers.errors import SneakersError, run_main
from sneakers.inference import resolve_device
from sneakers.loader import keep_in_memory
from sneakers.params import Params, load_params
from sneakers.paths import FEATURES, MODEL, SIMULATED, SPLIT, STANDARDIZED, TRAIN_LOG
from sneakers.train import train, train_head


def main() -> None:
    params = load_params()
    if params.model.part == "head":
        train_head_stage(params)
        return
    # A missing GPU, or too few for train.nproc_per_node, is reported before any data is read.
    distributed.check_gpus(params.train.nproc_per_node, resolve_device(params.runtime.device))
    if distributed.needs_launch(params.train.nproc_per_node):
        distributed.relaunch(__file__, params.train.nproc_per_node)
        return
    splits = load_splits(STANDARDIZED, SPLIT, ("train", "val"))
    splits["train"] = add_simulated(splits["train"], SIMULATED)
    keep = generator_masks(splits, params.train.generators)
    splits = {name: data.take(keep[name]) for name, data in splits.items()}
    keep_in_memory(splits, params.train)
    main = distributed.is_main()  # only rank 0 logs, and only it gets a model back
    try:
        with train_log() if main else nullcontext() as log:
            settings = (params.model, params.train, params.runtime, params.seed)
            fitted = train(splits, *settings, log, params.augment)
    finally:
        distributed.leave()
    if main:
        save(params, fitted)


def train_head_stage(params: Params) -> None:
    """model.train head: a linear head on the features stage's cached features, one process."""
    if params.train.nproc_per_node > 1:
        raise SneakersError(
            "train.nproc_per_node: model.train head fits a linear head in one "
            "process in seconds: set train.nproc_per_node to 1"
        )
    resolve_device(params.runtime.device)  # a missing GPU is reported before any data is read
    splits = load_splits(STANDARDIZED, SPLIT, ("train", "val"))
    splits["train"] = add_simulated(splits["train"], SIMULATED)
    keep_in_memory(splits, params.train)
    settings = (params.model, params.train, params.runtime, params.seed)
    with train_log() as log:
        fitted = train_head(splits, *settings, log, params.augment, FEATURES)
    save(params, fitted)


def train_log() -> Live:
    """The stage's DVCLive log; dvc.yaml, not DVCLive, declares its metrics and plots."""
    return Live(str(TRAIN_LOG), dvcyaml=False, save_dvc_exp=False, report=None)


def save(params: Params, fitted: Fitted) -> None:
    recipe = params.recipe()
    model = Artifact.of(fitted, params.model, recipe, params.data.profile, params.merge.min_size)
    artifact.save(MODEL, model)
    print(
        f"train: best epoch {fitted.trained.best_epoch}, "
        f"threshold {fitted.threshold:.3f} -> {MODEL}"
    )


if __name__ == "__main__":
    run_main(main)
