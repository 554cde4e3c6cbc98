"""Imported by the fork server when it starts (its preload): it dies with poolcli, and its
workers write Python warnings and libraries' log records as poolcli's one-line warnings,
without source paths, and Pillow's libtiff writes nothing to standard error (as in the
main process)."""

import logging
import warnings

from ..io.image_read import quiet_libtiff
from .lifeline import die_with_parent

die_with_parent()
quiet_libtiff()
warnings.formatwarning = lambda message, *args, **kwargs: f"poolcli: warning: {message}\n"
_line = logging.StreamHandler()
_line.setLevel(logging.WARNING)
_line.setFormatter(logging.Formatter("poolcli: warning: %(message)s"))
logging.lastResort = _line
