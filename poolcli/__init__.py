"""poolcli: max, min, avg, sum, l2, lp, median and mode pooling of images and N-d arrays.

The public names are imported on first use (PEP 562): ``import poolcli`` costs nothing,
so the command line can take charge of Ctrl-C before NumPy's ~0.3 s of imports start,
and ``poolcli --version`` answers without them.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {"Pipeline": ".pipeline", "PoolError": ".errors", "Stage": ".pipeline",
           "pool": ".pool", "pool_image": ".image", "pyramid": ".pyramid"}
__all__ = ["Pipeline", "PoolError", "Stage", "__version__", "pool", "pool_image", "pyramid"]

TYPE_CHECKING = False  # not typing's: importing typing takes ~10 ms of an exposed start-up
if TYPE_CHECKING:
    from .errors import PoolError
    from .image import pool_image
    from .pipeline import Pipeline, Stage
    from .pool import pool
    from .pyramid import pyramid


def __getattr__(name: str) -> object:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(ModuleType):
    """Keeps ``poolcli.pool`` and ``poolcli.pyramid`` the functions: importing a submodule
    sets it as an attribute of its package, which would hide the function of its name."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _PUBLIC and isinstance(value, ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
