"""One-line messages on standard error, in the command line's words.

The library names its options as Python does (`ceil_mode=True`, `overwrite`, `axes`);
``flag_words`` is the one place that turns those names into this command line's flags.
"""

from __future__ import annotations

import re
import sys

# pool()/batch parameter -> the flag that sets it.
FLAGS: dict[str, str] = {
    "kernel": "-k",
    "stride": "-s",
    "padding": "-p",
    "dilation": "-d",
    "ceil_mode": "--ceil-mode",
    "count_include_pad": "--count-include-pad",
    "divisor_override": "--divisor",
    "norm": "--norm",
    "output_size": "--output-size",
    "axes": "--axes",
    "ignore_nan": "--ignore-nan",
    "nodata": "--nodata",
    "output": "-o",
    "format": "--format",
    "overwrite": "--overwrite",
    "dtype": "--dtype",
    "memory_limit": "--memory-limit",
    "recursive": "-r",
    "quality": "--quality",
    "compress_level": "--compress-level",
    "premultiply": "--premultiply",
    "threads": "--threads",
}
# `name`, name=True or name=VALUE, for the names above only.
_NAMED = re.compile(r"`(?P<quoted>\w+)`|\b(?P<name>" + "|".join(FLAGS)
                    + r")=(?P<value>True\b|[^\s;,)]+)")


def flag_words(text: str) -> str:
    """A library message with its option names written as flags.

    >>> flag_words("axis 0: the last row is never pooled; ceil_mode=True keeps it")
    'axis 0: the last row is never pooled; --ceil-mode keeps it'
    >>> flag_words("quality=0 is out of range; use 1..100")
    '--quality 0 is out of range; use 1..100'
    >>> flag_words("standard input needs `output`: a file name")
    'standard input needs -o: a file name'
    """
    def swap(m: re.Match) -> str:
        if m["quoted"] is not None:
            return FLAGS.get(m["quoted"], m["quoted"])
        flag = FLAGS[m["name"]]
        return flag if m["value"] == "True" else f"{flag} {m['value']}"

    return _NAMED.sub(swap, text)


_COLOURS = {"error": "31", "warning": "33", "interrupted": "31"}


def say(kind: str, text: object) -> None:
    """One line on standard error: ``poolcli: error: ...``, coloured on a terminal."""
    label = f"poolcli: {kind}" + ("" if kind == "interrupted" else ":")
    if sys.stderr.isatty():
        label = f"\033[{_COLOURS[kind]}m{label}\033[0m"
    sys.stderr.write(f"{label} {' '.join(flag_words(str(text)).split())}\n")
    sys.stderr.flush()
