"""Imported by the fork server when it starts (its preload): it dies with poolcli."""

from .lifeline import die_with_parent

die_with_parent()
