"""`python -m poolcli` is `poolcli`."""

import sys

from .cli import entry

sys.exit(entry())
