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
    "glob": "--glob",
    "jobs": "-j",
    "quality": "--quality",
    "compress_level": "--compress-level",
    "premultiply": "--premultiply",
    "threads": "--threads",
    "engine": "--engine",
    "scheduler": "--scheduler",
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


# Flags users bring from ImageMagick, vips, PyTorch and other tools -> what poolcli says.
FOREIGN_FLAGS: dict[str, str] = {
    "--scale": "to shrink by 2 use a kind with -k 2, e.g. poolcli avg IN -k 2",
    "--resize": "to shrink by 2 use a kind with -k 2, or --output-size 100x150 for a size",
    "--size": "--output-size 100x150 pools to a size; -k 2 halves",
    "--json": "--report json prints the report as JSON",
    "--dry-run": "poolcli plan PIPELINE INPUT shows what a run would do without running it",
    "--ext": "--glob '*.png' chooses files by name",
    "--include": "--glob '*.png' chooses files by name",
    "--kernel-size": "-k/--kernel sets the window, e.g. -k 3 or -k 3x2",
    "--kernel_size": "-k/--kernel sets the window, e.g. -k 3 or -k 3x2",
    "--stride-size": "-s/--stride sets the step",
    "--pad": "-p/--padding pads, e.g. -p 1 or -p same",
    "--out": "-o/--output names the output",
    "--threads": "-j/--jobs sets the files pooled at once",
    "--force": "--overwrite replaces existing outputs",
    "--verbose": "the report table shows on a terminal; --report table forces it",
}
# Names users guess for a kind -> the kind.
KIND_WORDS: dict[str, str] = {
    "majority": "mode", "mean": "avg", "average": "avg", "maximum": "max", "minimum": "min",
    "rms": "l2", "norm": "lp", "lppool": "lp", "shrink": "avg -k 2", "resize": "avg -k 2",
    "scale": "avg -k 2", "downsample": "avg -k 2", "maxpool": "max", "avgpool": "avg",
    "pipeline": "run", "describe": "info", "identify": "info", "header": "info",
}


def teach(message: str) -> str:
    """A parser's terse message with a pointer to what poolcli calls the thing asked for.

    >>> teach("No such command 'majority'.")
    "no kind 'majority'; kinds: max min avg sum l2 lp median mode (and run, plan, info, \
bench); for majority use mode"
    >>> teach("No such option: --json")
    'no option --json; --report json prints the report as JSON'
    """
    from ..core.kinds import KINDS

    m = re.match(r"No such command '(?P<name>[^']*)'", message)
    if m:
        name = m["name"]
        text = (f"no kind {name!r}; kinds: {' '.join(KINDS)} (and run, plan, info, bench)")
        guess = KIND_WORDS.get(name.lower())
        return text + (f"; for {name} use {guess}" if guess else "")
    m = re.match(r"No such option: (?P<flag>\S+)", message)
    if m:
        flag = m["flag"].split("=", 1)[0]
        if flag.lower() in FOREIGN_FLAGS:
            return f"no option {flag}; {FOREIGN_FLAGS[flag.lower()]}"
    return message


_COLOURS = {"error": "31", "warning": "33", "note": "36", "interrupted": "31"}


def line(kind: str, text: object, colour: bool = False) -> str:
    """``poolcli: error: ...`` in the command line's words, without its newline."""
    label = f"poolcli: {kind}" + ("" if kind == "interrupted" else ":")
    if colour:
        label = f"\033[{_COLOURS[kind]}m{label}\033[0m"
    return f"{label} {' '.join(flag_words(str(text)).split())}"


def say(kind: str, text: object) -> None:
    """One line on standard error: ``poolcli: error: ...``, coloured on a terminal."""
    sys.stderr.write(line(kind, text, sys.stderr.isatty()) + "\n")
    sys.stderr.flush()
