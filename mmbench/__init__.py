"""mmbench: the LastFM-1K-MM benchmark for multimodal session-based music recommendation."""

from importlib.metadata import PackageNotFoundError, version

from mmbench.errors import MmbenchError
from mmbench.loading import load

try:
    __version__ = version("mmbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["MmbenchError", "load", "__version__"]
