"""Imported by the fork server when it starts (its preload): it dies with poolcli, and its
workers write Python warnings as poolcli's one-line warnings, without source paths."""

import warnings

from .lifeline import die_with_parent

die_with_parent()
warnings.formatwarning = lambda message, *args, **kwargs: f"poolcli: warning: {message}\n"
