"""Where the model looks: Grad-CAM heatmaps (Selvaraju et al. 2017) over the model's input.

Captum's `LayerGradCam` rather than `grad-cam`: captum is the PyTorch team's library and needs
only torch, numpy and matplotlib, where grad-cam also pulls in OpenCV and ttach.

A heatmap shows where the evidence for "ai" lies, in every picture, whatever its label and
call: one meaning for every overlay, and the study's CNN has little else to show (on the demo
model the Grad-CAM of the "real" logit is empty for 16 of 16 real test pictures: "real" is the
absence of AI evidence). It is taken on the last feature map with the picture's layout: the
trunk's last ReLU (53 x 53 at 240 px; non-negative, as Grad-CAM assumes) or ResNet-18's layer4
(8 x 8), upsampled to the input's size and scaled to [0, 1] per image. Heatmaps run in fp32:
they are a handful of images, and bf16 gradients would blur small differences.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image
from torch import nn

from sneakers.data import CLASS_NAMES
from sneakers.files import write_new
from sneakers.inference import to_input
from sneakers.model import EfficientNetLite, GapCNN, SeedCNN
from sneakers.plots import save_figure

ALPHA = 0.45  # share of the heatmap's colour in an overlay
AI = CLASS_NAMES.index("ai")


def target_layer(model: nn.Module) -> nn.Module:
    """The last layer whose output still has the picture's layout, for each architecture."""
    if isinstance(model, SeedCNN | GapCNN):
        return model.features[-3]  # the last ReLU (non-negative, as Grad-CAM assumes)
    if isinstance(model, nn.Sequential) and hasattr(model[-1], "layer4"):
        return model[-1].layer4  # torchvision ResNet-18 behind the input layer
    if isinstance(model, EfficientNetLite):
        # The head's last BatchNorm: its ReLU6 is one module shared with the stem's, so it
        # cannot be hooked alone; Grad-CAM's final ReLU keeps the positive evidence.
        return model.net._bn1
    raise ValueError(f"no Grad-CAM layer known for {type(model).__name__}")


def heatmaps(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 16,
    target: int = AI,
) -> np.ndarray:
    """N x H x W heatmaps in [0, 1] of uint8 N x 3 x H x W images for the target class (1 ai,
    0 real); an image without positive evidence for it gets all zeros."""
    model.eval()
    cam = LayerGradCam(model, target_layer(model))
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(images[start : start + batch_size], device)
        attr = cam.attribute(x, target=target, relu_attributions=True)
        attr = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        attr = attr[:, 0].detach().float().clamp_(min=0)
        peak = attr.flatten(1).amax(dim=1).clamp_(min=1e-12)[:, None, None]
        out.append((attr / peak).cpu().numpy())
    height, width = images.shape[-2:]
    return np.concatenate(out) if out else np.zeros((0, height, width), dtype=np.float32)


def overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 picture with its H x W heatmap blended on top (jet colours)."""
    colours = matplotlib.colormaps["jet"](heat)[..., :3] * 255
    weight = ALPHA * heat[..., None] ** 0.5  # cold areas keep the picture visible
    return (image * (1 - weight) + colours * weight).round().clip(0, 255).astype(np.uint8)


def save_overlay(image: np.ndarray, heat: np.ndarray, path: Path) -> None:
    """The overlay as a new PNG file; the folder is made where missing. It never replaces a
    file (or writes through a link): a taken path raises FileExistsError, and a write that
    fails leaves nothing behind."""
    png = io.BytesIO()
    Image.fromarray(overlay(image, heat)).save(png, "PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_new(path, png.getvalue())


def object_box(image: np.ndarray, background: int = 235) -> tuple[int, int, int, int] | None:
    """The bounding box (top, left, bottom, right) of pixels darker than a white background,
    a cheap outline of a product photo's shoe; None when nothing stands out."""
    ink = image.min(axis=2) < background
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def mass_in_box(heat: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of a heatmap's total inside a box (0 for an all-zero heatmap)."""
    top, left, bottom, right = box
    total = float(heat.sum())
    return float(heat[top:bottom, left:right].sum()) / total if total > 0 else 0.0


@dataclass
class Explained:
    """Pictures with their heatmaps: rows (split, source, label, p_ai, predicted, group),
    images N x H x W x 3 uint8, heat N x H x W in [0, 1]."""

    rows: pd.DataFrame
    images: np.ndarray
    heat: np.ndarray


def explain(
    model: nn.Module,
    rows: pd.DataFrame,
    images: torch.Tensor,
    device: torch.device,
) -> Explained:
    """The rows' uint8 N x 3 x H x W images with their heatmaps."""
    heat = heatmaps(model, images, device)
    return Explained(rows.reset_index(drop=True), images.permute(0, 2, 3, 1).numpy(), heat)


def heatmaps_png(explained: Explained, path: Path) -> None:
    """Grad-CAM overlays, a row per group (test or held-out, true class), mistakes first; each
    titled with source, true label and P(ai), red where the call was wrong."""
    rows = explained.rows
    groups = list(dict.fromkeys(rows["group"])) or ["nothing to show"]
    cols = max([int((rows["group"] == g).sum()) for g in groups] + [1])
    fig, axes = plt.subplots(
        len(groups), cols, figsize=(2 * cols, 2.35 * len(groups)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, group in enumerate(groups):
        axes[r, 0].text(
            -0.08,
            0.5,
            group,
            rotation=90,
            ha="right",
            va="center",
            transform=axes[r, 0].transAxes,
            fontsize=9,
        )
        for c, i in enumerate(np.flatnonzero(rows["group"] == group)):
            row, ax = rows.iloc[i], axes[r, c]
            ax.imshow(overlay(explained.images[i], explained.heat[i]))
            color = "green" if row["predicted"] == row["label"] else "red"
            ax.set_title(
                f"{str(row['source'])[:22]}\n{row['label']} · P(ai)={row['p_ai']:.2f}",
                fontsize=7,
                color=color,
            )
    fig.suptitle("Grad-CAM: where the model sees evidence for AI (red title: wrong call)")
    save_figure(fig, path)
