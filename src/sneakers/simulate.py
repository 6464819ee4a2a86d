"""Simulated fakes: real training photos passed through a small autoencoder trained on them.

Every generator's decoder ends in up-sampling layers, and up-sampling leaves periodic peaks in
a picture's spectrum whatever the generator was trained on. An autoencoder trained on real
photos alone reproduces those traces on top of real content (Zhang, Karaman and Chang 2019,
AutoGAN), so its reconstructions are an AI source that shares the content of the real class and
differs from it only by the generation step: a detector trained on them cannot learn "shoe on a
white background" or "MidJourney's style", only the traces.

Only real photos of the train split are read, trained on and reconstructed; each fake carries
its photo's group, so a pair never spans two splits. A fake goes through the rest of the one
preprocessing path (fit, resample, JPEG) exactly as its photo did, so the pair differs only by
the autoencoder.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageFilter
from torch import nn
from tqdm import tqdm

from sneakers.errors import SneakersError
from sneakers.params import SimulateSettings
from sneakers.preprocess import Recipe
from sneakers.shards import META_COLUMNS, ShardWriter, tar_member

# transposed: learned 4x4 stride-2 deconvolutions (DCGAN); nearest and bilinear: a fixed 2x
# up-sampling then a 3x3 convolution (StyleGAN2 and the Stable Diffusion decoder use these).
COLUMNS = [*META_COLUMNS, "parent", "scale"]
GENERATOR = "autoencoder"  # the fakes' generator family, whatever the upsampling
SPECTRUM_SAMPLE = 64  # pairs whose spectra the stage reports and draws


def up_block(upsample: str, c_in: int, c_out: int) -> nn.Module:
    if upsample == "transposed":
        return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode=upsample), nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
    )


class Autoencoder(nn.Module):
    """Strided-convolution encoder, `depth` 2x up-sampling stages back: a generator's decoder."""

    def __init__(self, upsample: str, depth: int, width: int) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(depth)]
        layers: list[nn.Module] = []
        c = 3
        for w in widths:
            layers += [nn.Conv2d(c, w, kernel_size=4, stride=2, padding=1), nn.ReLU(inplace=True)]
            c = w
        for w in reversed(widths):
            layers += [up_block(upsample, c, w), nn.ReLU(inplace=True)]
            c = w
        layers.append(nn.Conv2d(c, 3, kernel_size=3, padding=1))
        self.net = nn.Sequential(*layers)
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_photos(split: pd.DataFrame) -> pd.DataFrame:
    """The rows the stage may read: real photos of the train split, nothing else."""
    return split[(split["split"] == "train") & (split["label"] == "real")].reset_index(drop=True)


def to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB picture to a 3 x H x W float tensor in [-1, 1]."""
    return torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def to_image(x: torch.Tensor) -> Image.Image:
    """3 x H x W float tensor in [-1, 1] to an RGB picture (rounded, clipped)."""
    pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(pixels))


def fit_autoencoder(
    photos: torch.Tensor, settings: SimulateSettings, seed: int
) -> tuple[Autoencoder, float]:
    """Train on random crops of the photos (N x 3 x H x W in [-1, 1]) with an L1 loss; return the
    model and its mean loss over the last tenth of the steps."""
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    model = Autoencoder(settings.upsample, settings.depth, settings.width)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    n, _, h, w = photos.shape
    p = min(settings.patch, h - h % model.multiple, w - w % model.multiple)
    tail: list[float] = []
    for step in tqdm(
        range(settings.steps), desc="simulate: autoencoder", unit="step", leave=False, disable=None
    ):
        picks = rng.integers(0, n, settings.batch_size)
        tops = rng.integers(0, h - p + 1, settings.batch_size)
        lefts = rng.integers(0, w - p + 1, settings.batch_size)
        batch = torch.stack(
            [photos[i, :, t : t + p, x : x + p] for i, t, x in zip(picks, tops, lefts, strict=True)]
        )
        loss = nn.functional.l1_loss(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= settings.steps - max(1, settings.steps // 10):
            tail.append(loss.item())
    return model.eval(), float(np.mean(tail))


@torch.no_grad()
def reconstruct(model: Autoencoder, im: Image.Image, scale: float) -> Image.Image:
    """The autoencoder's picture of `im` generated at `scale` times its size (reflect-padded to
    the model's multiple, cropped back)."""
    if scale != 1:
        side = round(im.width * scale)
        im = im.resize((side, side), Image.Resampling.LANCZOS)
    x = to_tensor(im)[None]
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % model.multiple, -w % model.multiple
    x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return to_image(model(x)[0, :, :h, :w])


def mean_spectrum(images: list[Image.Image]) -> np.ndarray:
    """Mean magnitude spectrum (unshifted) of the pictures' grey high-pass residuals: the picture
    minus its blur, so content does not drown the up-sampling peaks."""
    total = 0.0
    for im in images:
        grey = im.convert("L")
        residual = np.asarray(grey, np.float64) - np.asarray(
            grey.filter(ImageFilter.GaussianBlur(1.5)), np.float64
        )
        total = total + np.abs(np.fft.fft2(residual))
    return total / len(images)


def peak_ratio(spectrum: np.ndarray, cycles: float) -> float:
    """Magnitude at `cycles` per pixel, horizontally and vertically, over the median of the
    bins three to five away: a periodic trace of that frequency is a ratio well above 1. The
    peak may fall between two bins (after a non-integer resample): the larger counts."""
    at = cycles * spectrum.shape[0]
    lo = int(np.floor(at))
    near = [round(at) + d for d in (-5, -4, -3, 3, 4, 5)]
    lines = [spectrum[0], spectrum[:, 0]]
    return float(np.mean([max(line[lo], line[lo + 1]) / np.median(line[near]) for line in lines]))


@dataclass
class Simulated:
    """What the stage made: the fakes' index, a summary for metrics, and the mean spectra of a
    sample of standardized photos and of their fakes (None when disabled)."""

    index: pd.DataFrame
    summary: dict[str, Any]
    photo_spectrum: np.ndarray | None = None
    fake_spectrum: np.ndarray | None = None


def simulate(
    split: pd.DataFrame,
    raw_dir: Path,
    out_dir: Path,
    settings: SimulateSettings,
    recipe: Recipe,
    seed: int,
) -> Simulated:
    """Write the simulated fakes into out_dir (shards and index.csv). Disabled, the index is
    empty and nothing is read."""
    started = time.perf_counter()
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        shards = ShardWriter(staging, shard_size=1000)
        summary: dict[str, Any] = {"enabled": settings.enabled, "images": 0}
        pairs: list[tuple[Image.Image, Image.Image]] = []
        if settings.enabled:
            photos = train_photos(split)
            if photos.empty:
                raise SneakersError("simulate: the train split has no real photo: check data/split")
            rng = np.random.default_rng([seed, 2])
            keep = max(1, round(settings.fraction * len(photos)))
            chosen = photos.iloc[np.sort(rng.permutation(len(photos))[:keep])]
            raw = [(raw_dir / row.source / row.path).read_bytes() for row in chosen.itertuples()]
            fitted = [recipe.fitted(data) for data in raw]
            model, loss = fit_autoencoder(
                torch.stack([to_tensor(im) for im in fitted]), settings, seed
            )
            scales = rng.choice(settings.scales, size=len(chosen))
            work = zip(chosen.to_dict("records"), raw, fitted, scales, strict=True)
            for row, data, im, scale in tqdm(
                work, total=len(chosen), desc="simulate: fakes", unit="image", disable=None
            ):
                fake = recipe.finish(reconstruct(model, im, float(scale)), data)
                meta = {
                    **{k: row[k] for k in META_COLUMNS},
                    "id": f"{row['id']}-sim",
                    "label": "ai",
                    "source": f"simulated-{settings.upsample}",
                    "generator": GENERATOR,
                    "parent": row["id"],
                    "scale": float(scale),
                }
                shards.add(tar_member(f"{meta['id']}.jpg", fake), [meta], [len(fake)])
                if len(pairs) < SPECTRUM_SAMPLE:
                    photo = recipe.finish(im, data)  # its standardized bytes, without a re-decode
                    pairs.append((Image.open(io.BytesIO(photo)), Image.open(io.BytesIO(fake))))
            summary.update(images=len(chosen), photos=len(photos), autoencoder_l1=round(loss, 4))
        shards.close()
        index = pd.DataFrame(shards.records, columns=[*COLUMNS, "shard", "offset", "length"])
        index.to_csv(staging / "index.csv", index=False)
    except BaseException:  # an error or an interrupt: leave no half-written folder behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    if not pairs:
        return Simulated(index, summary)
    photo_spectrum = mean_spectrum([photo for photo, _ in pairs])
    fake_spectrum = mean_spectrum([fake for _, fake in pairs])
    # Where each 2x up-sampling's period lands after the recipe's resample, in both spectra.
    summary["peak_ratio"] = {
        f"period_{2**k}": {
            "photos": round(peak_ratio(photo_spectrum, 1 / (2**k * recipe.resample)), 3),
            "fakes": round(peak_ratio(fake_spectrum, 1 / (2**k * recipe.resample)), 3),
        }
        for k in range(1, settings.depth + 1)
    }
    return Simulated(index, summary, photo_spectrum, fake_spectrum)
