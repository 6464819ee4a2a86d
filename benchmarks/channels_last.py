"""Target 2: train-step and eval speed of channels_last against contiguous (NCHW), on this CPU.

    python benchmarks/channels_last.py [--arch seed_cnn] [--size 240] [--steps 4] [--threads N]

Two copies of one model (same weights): one with channels_last weights fed channels_last
inputs (what `train()` and `inference.Scorer` do today, on every device), one plain contiguous
fed contiguous inputs. A train step is forward, loss, backward and an Adam step on a batch of
random inputs; eval is a no-grad forward in eval mode, as `Scorer.proba` runs it. Both layouts
run under `seed_everything` (deterministic algorithms, as in training), one warm-up each, then
alternate step by step (ABBA order) so a change in machine load hits both alike.

The last line gives channels_last images/s / contiguous images/s for training and for eval
(above 1: channels_last is faster here).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from _common import add_step_args, apply_step_args, load, machine
from torch import nn

from sneakers.model import build_model
from sneakers.train import seed_everything


def train_step(model, optimizer, x, y) -> float:
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    started = time.perf_counter()
    loss = loss_fn(model(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    loss.item()
    return time.perf_counter() - started


@torch.no_grad()
def eval_step(model, x) -> float:
    model.eval()
    started = time.perf_counter()
    torch.softmax(model(x).float(), dim=1)[:, 1].numpy()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_step_args(parser, steps=4, eval_batches=6)
    args = parser.parse_args()
    apply_step_args(args)
    seed_everything(args.seed)
    print(machine())
    print(
        f"{args.arch} at {args.size}px, batch {args.batch_size}: {args.steps} train steps and "
        f"{args.eval_batches} eval batches per layout after 1 warm-up; {load()}"
    )

    base = build_model(args.arch, args.size)
    models = {
        "channels_last": copy.deepcopy(base).to(memory_format=torch.channels_last),
        "contiguous": copy.deepcopy(base),
    }
    optimizers = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, 3, args.size, args.size, generator=gen)
    y = torch.randint(0, 2, (args.batch_size,), generator=gen)
    inputs = {"channels_last": x.contiguous(memory_format=torch.channels_last), "contiguous": x}

    with torch.no_grad():  # same weights, same numbers (up to float rounding)
        a = models["channels_last"].eval()(inputs["channels_last"])
        b = models["contiguous"].eval()(inputs["contiguous"])
    print(f"max |logit difference| between layouts: {float((a - b).abs().max()):.2e}")

    names = list(models)
    times = {(k, kind): 0.0 for k in names for kind in ("train", "eval")}
    for k in names:  # warm-up, excluded
        train_step(models[k], optimizers[k], inputs[k], y)
        eval_step(models[k], inputs[k])
    for i in range(args.steps):
        for k in names if i % 2 == 0 else names[::-1]:
            times[k, "train"] += train_step(models[k], optimizers[k], inputs[k], y)
    for i in range(args.eval_batches):
        for k in names if i % 2 == 0 else names[::-1]:
            times[k, "eval"] += eval_step(models[k], inputs[k])
    rate = {}
    for kind, n in (("train", args.steps), ("eval", args.eval_batches)):
        for k in names:
            rate[k, kind] = n * args.batch_size / times[k, kind]
        print(
            f"{kind:5s}: channels_last {rate['channels_last', kind]:7.2f} images/s, "
            f"contiguous {rate['contiguous', kind]:7.2f} images/s  ({load()})"
        )
    ratio = {
        kind: rate["channels_last", kind] / rate["contiguous", kind] for kind in ("train", "eval")
    }
    print(f"channels_last / contiguous: train {ratio['train']:.3f}, eval {ratio['eval']:.3f}")


if __name__ == "__main__":
    main()
