"""Detector of AI-generated sneaker images."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sneakers")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
