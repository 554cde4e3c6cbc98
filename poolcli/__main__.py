"""`python -m poolcli` is `poolcli`."""

import sys

from .cli import main

sys.exit(main())
