"""A few examples of every target of tests/fuzz/fuzz_inputs.py, so the script keeps working.

The real run is `python tests/fuzz/fuzz_inputs.py --minutes 10`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
import fuzz_inputs


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on damaged files, expected
@pytest.mark.parametrize("name", ["parse", "toml", "pool", "files"])
def test_fuzz_target_smoke(tmp_path, name):
    fuzz_inputs.targets(tmp_path, examples=8)[name]()
