"""poolcli: max, min, avg, sum, l2, lp, median and mode pooling of images and N-d arrays."""

from .errors import PoolError
from .image import pool_image
from .pipeline import Pipeline, Stage
from .pool import pool
from .pyramid import pyramid

__version__ = "0.1.0"
__all__ = ["Pipeline", "PoolError", "Stage", "__version__", "pool", "pool_image", "pyramid"]
