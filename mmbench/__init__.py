"""mmbench: the LastFM-1K-MM benchmark for multimodal session-based music recommendation."""

from importlib.metadata import PackageNotFoundError, version

from mmbench.errors import MmbenchError
from mmbench.loading import load

try:
    __version__ = version("mmbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["Evaluator", "MmbenchError", "load", "__version__"]


def __getattr__(name: str):
    # The evaluator loads numba's compiled scanner: imported on first use of mmbench.Evaluator,
    # not by `import mmbench`.
    if name == "Evaluator":
        from mmbench.evaluator import Evaluator

        return Evaluator
    raise AttributeError(f"module 'mmbench' has no attribute {name!r}")
