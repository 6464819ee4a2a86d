"""What training, evaluation and prediction share: the device, precision, input scaling and
batched probabilities."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch
from torch import nn

from sneakers.data import MEAN, STD, Images, batches
from sneakers.errors import SneakersError
from sneakers.params import Device, Precision, choices

DEVICES, PRECISIONS = choices(Device), choices(Precision)


def resolve_device(name: str, where: str = "runtime.device") -> torch.device:
    """auto picks CUDA when present; asking for CUDA where there is none is a user error."""
    if name not in DEVICES:
        raise SneakersError(f"{where}: is {name!r} (use auto, cpu or cuda)")
    if name == "cuda" and not torch.cuda.is_available():
        raise SneakersError(f"{where}: is cuda but no CUDA GPU is visible (use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def device_label(device: torch.device) -> str:
    """cpu, or the GPU's name, for run records."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 N x 3 x H x W to normalized float on device, channels_last (faster convolutions)."""
    x = images.to(device, non_blocking=True).float().div_(255.0).sub_(MEAN).div_(STD)
    return x.contiguous(memory_format=torch.channels_last)


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes bf16 in hardware: a CUDA GPU that supports it, or a CPU with
    AMX-BF16 tiles or AVX512-BF16. Elsewhere PyTorch runs bf16 convolutions in its own slow
    kernels, not oneDNN's (6-8x slower than fp32 on an AVX2 EPYC: docs/performance.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    flags = torch.cpu.get_capabilities()
    return bool(flags.get("amx_bf16") or flags.get("avx512_bf16"))


def resolve_precision(name: str, device: torch.device) -> str:
    """fp32 or bf16 for this device; auto is bf16 where the hardware computes it natively."""
    if name not in PRECISIONS:
        raise SneakersError(f"precision: is {name!r} (use {', '.join(PRECISIONS)})")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "bf16" and not native_bf16(device):
        _note_emulated(device.type)
    return name


@cache
def _note_emulated(device_type: str) -> None:
    """One line per process, however many settings ask for emulated bf16."""
    note = "bf16 is emulated and several times slower than fp32 here"
    print(
        f"note: {device_type} has no native bf16 (AMX-BF16, AVX512-BF16 or a bf16 GPU): {note}",
        file=sys.stderr,
    )


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast (weights and reductions stay fp32) for precision bf16; a no-op for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@dataclass
class Scorer:
    """What scoring a picture takes, built once: the network, its device, a batch size and an
    autocast context for the (resolved) precision. Train's validation, evaluate and predict all
    score through one."""

    model: nn.Module
    device: torch.device
    batch_size: int
    precision: str  # fp32 or bf16, already resolved
    workers: int = 0  # DataLoader workers decoding images that stream from the shards
    autocast: torch.autocast = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.autocast = autocast(self.device, self.precision)

    @torch.no_grad()
    def proba(self, images: Images) -> np.ndarray:
        """P(ai) for every image, in order."""
        self.model.eval()
        out = []
        for batch in batches(images, self.batch_size, workers=self.workers):
            with self.autocast:
                logits = self.model(to_input(batch, self.device))
            out.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu())
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)
