"""Synthetic demo sources: deterministic sneaker "photos" and "AI renders" without any network.

Kaggle is unreachable in the default pipeline run, so this package writes stand-ins for the three
real sources. Each picture is drawn from a seed with PIL, so every run writes the same bytes.
Picture ``i`` of a kind depends only on (seed, kind, i, size), which lets the compiled source
reproduce photos and renders exactly, whatever the other sources' counts are.

Photos and renders differ in content the way camera photos and generator output do (sensor
noise, defocus, uneven light and muted colours versus smooth vivid gradients, gloss and soft
shadows), so a small CNN can tell them apart after both are standardized identically.
"""

from sneakers.demo.shoe import BRANDS
from sneakers.demo.writers import generate_source

__all__ = ["BRANDS", "generate_source"]
