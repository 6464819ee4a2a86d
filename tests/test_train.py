"""Training: settings validation, device choice, learning, epoch selection, threshold, precise BN
and bit-for-bit reproducibility on the CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import Trained, in_shards
from torch import nn
from torch.utils.data import DistributedSampler, RandomSampler, TensorDataset

from sneakers.data import ShardImages, SplitData, cache
from sneakers.distributed import LAUNCHED, Ranks
from sneakers.errors import SneakersError
from sneakers.inference import Scorer, autocast, resolve_device, to_input
from sneakers.loader import DeviceBatches, keep_in_memory, make_loader
from sneakers.logs import MemoryLog
from sneakers.metrics import choose_threshold, log_loss, threshold_at_fpr
from sneakers.model import build_model
from sneakers.params import ModelSettings, Optimizer, RuntimeSettings, TrainSettings, choices
from sneakers.train import OPTIMIZERS, recalibrate_batchnorm, train

CPU = torch.device("cpu")
METRICS = ["train/loss", "train/acc", "val/loss", "val/acc"]


def val_p_ai(trained: Trained) -> np.ndarray:
    """P(ai) on validation from the model rebuilt out of the returned artifact, in the precision
    that training validated in (the one its loss and threshold were computed in)."""
    precision = trained.artifact.card.trained.eval_precision
    return Scorer(trained.network(), CPU, 16, precision).proba(trained.splits["val"].images)


# --- settings and device (bad train params: tests/test_params.py) ---


def test_the_optimizer_names_are_the_params_choices() -> None:
    assert tuple(OPTIMIZERS) == choices(Optimizer)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_cuda_without_a_gpu_says_what_to_use_instead() -> None:
    with pytest.raises(SneakersError, match="no CUDA GPU") as err:
        resolve_device("cuda")
    assert "cpu" in str(err.value)


def test_auto_and_unknown_devices() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == CPU
    with pytest.raises(SneakersError, match="gpu"):
        resolve_device("gpu")


# --- the training run ---


def test_train_learns_a_separable_task(trained: Trained) -> None:
    labels = trained.splits["val"].labels.numpy()
    p_ai = val_p_ai(trained)
    card = trained.artifact.card
    accuracy = float(np.mean((p_ai >= card.threshold) == labels))
    assert accuracy >= 0.9
    assert (card.arch, card.input) == ("seed_cnn", "rgb")
    assert card.image_size == trained.splits["train"].images.shape[-1]
    assert card.trained.device == "cpu"
    assert all(v.device == CPU for v in trained.artifact.state_dict.values())


def test_four_metrics_are_logged_per_epoch(trained: Trained) -> None:
    epochs = trained.settings.epochs
    assert trained.log.step == epochs
    assert sorted((step, name) for step, name, _ in trained.log.records) == sorted(
        (step, name) for step in range(epochs) for name in METRICS
    )
    for name in METRICS:
        assert all(np.isfinite(trained.log.values(name)))
    assert {"best_epoch", "best_val_loss", "seconds"} <= set(trained.log.summary)


def test_the_epoch_with_the_lowest_val_loss_is_kept(trained_at: Trained) -> None:
    trained = trained_at
    val_losses = trained.log.values("val/loss")
    best = int(np.argmin(val_losses)) + 1
    record = trained.artifact.card.trained
    assert record.best_epoch == best == trained.log.summary["best_epoch"]
    assert record.best_val_loss == pytest.approx(min(val_losses))
    # The weights are that epoch's, not the last one's: their val loss is the logged minimum.
    loss = log_loss(trained.splits["val"].labels.numpy(), val_p_ai(trained))
    assert loss == pytest.approx(min(val_losses), rel=1e-5)


def test_threshold_is_chosen_on_validation(trained_at: Trained) -> None:
    trained = trained_at
    threshold = trained.artifact.card.threshold
    assert 0 < threshold < 1
    expected = choose_threshold(trained.splits["val"].labels.numpy(), val_p_ai(trained))
    assert threshold == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_fpr_rule_fixes_the_threshold_on_validation_reals(
    train_run: Callable[..., Trained], precision: str
) -> None:
    run = train_run(
        epochs=1, threshold="val_fpr", target_fpr=0.1, precision=precision, eval_precision=precision
    )
    y, p = run.splits["val"].labels.numpy(), val_p_ai(run)
    threshold = run.artifact.card.threshold
    assert threshold == pytest.approx(threshold_at_fpr(y, p, 0.1), abs=1e-6)
    assert (p[y == 0] >= threshold).mean() <= 0.1


def test_a_fixed_threshold_is_kept(train_run: Callable[..., Trained]) -> None:
    assert train_run(epochs=1, threshold=0.3).artifact.card.threshold == 0.3


def test_same_seed_same_weights_and_threshold(train_run: Callable[..., Trained]) -> None:
    first, second, other = train_run(epochs=2), train_run(epochs=2), train_run(epochs=2, seed=7)
    a, b = first.artifact, second.artifact
    assert a.card.threshold == b.card.threshold
    assert a.state_dict.keys() == b.state_dict.keys()
    for key, value in a.state_dict.items():
        assert torch.equal(value, b.state_dict[key]), key
    assert first.log.records == second.log.records
    # ... and the comparison is sharp enough to see another seed.
    assert not all(torch.equal(v, other.artifact.state_dict[k]) for k, v in a.state_dict.items())


def test_bf16_training_is_reproducible_and_recorded(train_run: Callable[..., Trained]) -> None:
    first, second = (train_run(epochs=1, precision="bf16") for _ in range(2))
    fp32 = train_run(epochs=1, precision="fp32", eval_precision="fp32")
    assert first.artifact.card.trained.precision == "bf16"
    assert fp32.artifact.card.trained.precision == "fp32"
    a, b, c = (run.artifact.state_dict for run in (first, second, fp32))
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same machine: same model
    assert not all(torch.equal(a[k], c[k]) for k in a)  # and bf16 really ran
    assert first.log.summary["images_per_second"] > 0


# --- batches ---


@pytest.mark.parametrize(("n", "batch", "sizes"), [(10, 4, [4, 4, 2]), (9, 4, [4, 4])])
def test_device_batches_cover_the_split_once_per_epoch(
    make_splits: Callable[[], dict], n: int, batch: int, sizes: list[int]
) -> None:
    """Batches cut from the kept tensor (on the CPU here; on the GPU in training): a new
    shuffle each epoch, every image at most once, a lone last image dropped as BatchNorm wants."""
    data = make_splits()["train"]
    data = type(data)(data.images[:n], data.labels[:n], data.rows.iloc[:n])

    def shuffled(epoch: int) -> DeviceBatches:
        sampler = DistributedSampler(TensorDataset(data.labels), 1, 0, shuffle=True, seed=3)
        sampler.set_epoch(epoch)
        return DeviceBatches(data, sampler, batch, CPU, drop_last=n % batch == 1)

    epochs = [list(shuffled(epoch)) for epoch in (1, 2)]
    for epoch in epochs:
        assert [len(y) for _, y in epoch] == sizes == [len(x) for x, _ in epoch]
        seen = torch.cat([x for x, _ in epoch]).flatten(1)
        rows = {tuple(r.tolist()) for r in seen}
        assert len(rows) == sum(sizes)  # no image twice
        assert rows <= {tuple(r.tolist()) for r in data.images.flatten(1)}
        for x, y in epoch:  # each image keeps its own label
            for image, label in zip(x, y, strict=True):
                index = int((data.images.flatten(1) == image.flatten()).all(1).nonzero()[0, 0])
                assert int(data.labels[index]) == int(label)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(*epochs, strict=True))
    again = [x for x, _ in shuffled(1)]
    assert all(torch.equal(a, b[0]) for a, b in zip(again, epochs[0], strict=True))


def test_the_cpu_keeps_the_dataloader(make_splits: Callable[[], dict]) -> None:
    loader = make_loader(make_splits()["train"], TrainSettings(), CPU, seed=0)
    assert not isinstance(loader, DeviceBatches)


def test_the_global_batch_is_shared_out_across_ranks(
    make_splits: Callable[[], dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under torchrun, two ranks' batches together are one process's, step by step, each
    epoch; a plain process keeps its own seeded shuffle."""
    data, settings = make_splits()["train"], TrainSettings(batch_size=8)
    plain = make_loader(data, settings, CPU, seed=0)
    assert isinstance(plain.sampler, RandomSampler)
    monkeypatch.setenv(LAUNCHED, "test")
    one = make_loader(data, settings, CPU, seed=0)
    two = [make_loader(data, settings, CPU, 0, Ranks(r, 2, r)) for r in (0, 1)]
    for epoch in (1, 2):
        for loader in (one, *two):
            loader.sampler.set_epoch(epoch)
        for (x, _), (a, _), (b, _) in zip(one, *two, strict=True):
            assert len(a) == len(b) == 4
            assert sorted(map(bytes, x.numpy())) == sorted(map(bytes, torch.cat([a, b]).numpy()))
    with pytest.raises(SneakersError, match="not divisible by train.nproc_per_node 3"):
        make_loader(data, settings, CPU, 0, Ranks(0, 3, 0))


# --- streaming from the shards (train.memory_gb) ---


def decoded(splits: dict[str, SplitData]) -> dict[str, SplitData]:
    """A copy of streamed splits with every image decoded into memory."""
    out = {k: SplitData(v.images, v.labels, v.rows) for k, v in splits.items()}
    assert cache(out)
    return out


@pytest.mark.parametrize(("workers", "precision"), [(0, "fp32"), (2, "fp32"), (2, "bf16")])
def test_a_streamed_split_trains_the_in_memory_model(
    make_splits: Callable[[], dict], tmp_path: Path, workers: int, precision: str
) -> None:
    """Decoded by DataLoader workers batch by batch, the images train the model they train
    when decoded first: same batches, same order, so the same weights, threshold and log."""
    streamed = in_shards(make_splits(), tmp_path)

    def fit(splits: dict[str, SplitData], num_workers: int) -> tuple[dict, float, list]:
        settings = TrainSettings(
            epochs=2, lr=0.01, batch_size=8, num_workers=num_workers, precision=precision
        )
        runtime, log = RuntimeSettings(device="cpu", precision=precision), MemoryLog()
        fitted = train(splits, ModelSettings(), settings, runtime, 1, log)
        return fitted.state_dict, fitted.threshold, log.records

    weights, threshold, log = fit(decoded(streamed), 0)
    assert isinstance(streamed["train"].images, ShardImages)
    got_weights, got_threshold, got_log = fit(streamed, workers)
    assert weights.keys() == got_weights.keys()
    assert all(torch.equal(weights[k], got_weights[k]) for k in weights)
    assert (got_threshold, got_log) == (threshold, log)


def test_memory_gb_decodes_what_fits_and_streams_the_rest(
    make_splits: Callable[[], dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every process on the node holds a copy, so the budget is shared by nproc_per_node."""
    splits = in_shards({k: v for k, v in make_splits().items() if k != "test"}, tmp_path)
    gib = 2 * sum(s.images.nbytes for s in splits.values()) / 2**30  # two processes

    assert not keep_in_memory(splits, TrainSettings(memory_gb=gib * 0.99, nproc_per_node=2))
    assert all(isinstance(s.images, ShardImages) for s in splits.values())
    out = capsys.readouterr().out
    assert "48 train + 48 val images stream from the shards" in out
    assert "decoded by 0 DataLoader worker(s): set train.num_workers" in out

    assert keep_in_memory(splits, TrainSettings(memory_gb=gib, nproc_per_node=2))
    assert all(isinstance(s.images, torch.Tensor) for s in splits.values())
    assert "48 train + 48 val images decoded into memory" in capsys.readouterr().out


def test_each_rank_streams_only_its_own_images(
    make_splits: Callable[[], dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under torchrun a streamed rank decodes its share of each batch and nothing else, and
    its batches are those it would cut from the decoded split."""
    streamed = in_shards({"train": make_splits()["train"]}, tmp_path)["train"]
    in_memory = decoded({"train": streamed})["train"]
    monkeypatch.setenv(LAUNCHED, "test")
    read: list[int] = []
    get = ShardImages.__getitem__
    monkeypatch.setattr(ShardImages, "__getitem__", lambda self, i: read.append(i) or get(self, i))
    settings, mine = TrainSettings(batch_size=8), {}
    for rank in (0, 1):
        read.clear()
        loaders = [
            make_loader(d, settings, CPU, 0, Ranks(rank, 2, rank)) for d in (streamed, in_memory)
        ]
        for loader in loaders:
            loader.sampler.set_epoch(3)
        for (x, y), (x_memory, y_memory) in zip(*loaders, strict=True):
            assert torch.equal(x, x_memory) and torch.equal(y, y_memory)
        mine[rank] = list(read)
    assert len(mine[0]) == len(mine[1]) == len(streamed) // 2
    assert set(mine[0]).isdisjoint(mine[1]) and set(mine[0]) | set(mine[1]) == set(range(48))


# --- precise BatchNorm ---


def test_recalibrate_batchnorm_averages_the_batch_statistics() -> None:
    """Running stats become the plain mean of each batch's statistics, whatever they were."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 6, 5), dtype=torch.uint8, generator=generator)
    images[:, 1] //= 4  # channels with different statistics
    bn = nn.BatchNorm2d(3, momentum=0.3)
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(7.0)
    bn.num_batches_tracked.fill_(5)  # as after training: the old statistics must not count
    bn.eval()

    recalibrate_batchnorm(bn, images, CPU, batch_size=4)  # batches of 4, 4 and 2

    batches = [to_input(images[s : s + 4], CPU) for s in range(0, 10, 4)]
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in batches])
    variances = torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in batches])
    torch.testing.assert_close(bn.running_mean, means.mean(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(bn.running_var, variances.mean(0), rtol=0, atol=1e-6)
    assert int(bn.num_batches_tracked) == 3
    assert bn.momentum == 0.3  # restored for later training


@torch.no_grad()
def handwritten_precise_bn(model: nn.Module, images: torch.Tensor, batch_size: int) -> None:
    """The loop recalibrate_batchnorm ran before it called update_bn, for the parity test."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for start in range(0, len(images), batch_size):
        with autocast(CPU, "fp32"):
            model(to_input(images[start : start + batch_size], CPU))
    for m, momentum in zip(layers, momenta, strict=True):
        m.momentum = momentum


def test_update_bn_gives_the_handwritten_statistics_bit_for_bit() -> None:
    images = torch.randint(
        0, 256, (21, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    ours, theirs = (build_model("seed_cnn", 40) for _ in range(2))
    theirs.load_state_dict(ours.state_dict())
    recalibrate_batchnorm(ours, images, CPU, batch_size=8)
    handwritten_precise_bn(theirs, images, batch_size=8)
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
