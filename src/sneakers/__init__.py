"""Detector of AI-generated sneaker images."""

import os
from importlib.metadata import PackageNotFoundError, version

# OpenMP threads that wait at a barrier sleep instead of spinning. On a machine whose cores
# another job shares, a spinning thread holds the core its preempted partner needs, and every
# parallel region waits out a time slice: passive waiting trained 1.3x faster there and cost
# nothing idle (docs/performance.md, section 7). libgomp reads this once, when torch loads it,
# so it is set here, before any sneakers module imports torch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("sneakers")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
