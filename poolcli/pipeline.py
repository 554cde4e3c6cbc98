"""Pipelines: the stage syntax (`max:k=3,s=2,p=1 | avg:k=2`), TOML files, and running a chain."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .core.kinds import canonical_kind, check_option, result_dtype
from .core.plan import PoolPlan, make_plan
from .errors import PoolError
from .pool import engine_for


@dataclass(frozen=True)
class StageKey:
    """One pool() option a stage may set: its name, its short stage key, its value type."""

    param: str
    short: str
    value: str  # "ints" (3 or 3x2), "padding" (ints, same, valid), "bool" or "number"


# The one table of stage options: the pipeline grammar, TOML files and the command line's
# stage flags all read it.
STAGE_KEYS: tuple[StageKey, ...] = (
    StageKey("kernel", "k", "ints"),
    StageKey("stride", "s", "ints"),
    StageKey("padding", "p", "padding"),
    StageKey("dilation", "d", "ints"),
    StageKey("ceil_mode", "ceil", "bool"),
    StageKey("count_include_pad", "count_pad", "bool"),
    StageKey("divisor_override", "divisor", "number"),
    StageKey("norm", "norm", "number"),
    StageKey("output_size", "out", "ints"),
    StageKey("axes", "axes", "ints"),
    StageKey("ignore_nan", "ignore_nan", "bool"),
    StageKey("nodata", "nodata", "number"),
)
BY_PARAM: dict[str, StageKey] = {k.param: k for k in STAGE_KEYS}
# Stage keys: the short and long spellings of every option -> the pool() argument.
KEYS: dict[str, str] = {name: k.param for k in STAGE_KEYS for name in (k.short, k.param)}
SHORT: dict[str, str] = {k.param: k.short for k in STAGE_KEYS}
_ALLOWED = {"ints": "an int or a list like 3x2", "bool": "true or false",
            "number": "a number", "padding": "an int, a list like 3x2, 'same' or 'valid'"}


# The axis length a stage is checked against before any data is seen: longer than any
# legal window and its padding (each value is at most 2**48), so a check at parse time
# can fail only on what no input could make right; planning costs the same for any length.
_PROBE = 1 << 100


def parse_ints(text: str, sep: str = "x") -> int | tuple[int, ...]:
    """The one grammar of integer lists: ``"3"`` -> 3, ``"3x2"`` -> (3, 2).

    ``sep`` is the separator (``x``; ``,`` for axes on the command line). ValueError if
    ``text`` is not such a list.

    >>> parse_ints("3"), parse_ints("3x2"), parse_ints("0,1", sep=",")
    (3, (3, 2), (0, 1))
    """
    vals = tuple(int(v) for v in text.strip().lower().split(sep))
    return vals[0] if len(vals) == 1 else vals


def parse_value(param: str, text: str, where: str, sep: str = "x") -> Any:
    """The value of option ``param`` written as ``text``; ``where`` names it in errors."""
    kind = BY_PARAM[param].value
    low = text.strip().lower()
    try:
        if kind == "bool":
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
        elif kind == "number":
            f = float(low)
            return int(f) if f.is_integer() and param == "divisor_override" else f
        elif kind == "padding" and low in ("same", "valid"):
            return low
        else:
            return parse_ints(low, sep)
    except ValueError:
        pass
    raise PoolError(f"{where} {text!r} is not understood; use {_ALLOWED[kind]}")


@dataclass(frozen=True)
class StageTiming:
    """What one stage did to one array: shapes in and out and the seconds it took."""

    stage: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    seconds: float


@dataclass(frozen=True, eq=True)
class Stage:
    """One pooling step: a kind and the pool() keyword options it sets."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = canonical_kind(self.kind)
        object.__setattr__(self, "kind", name)
        for key in self.options:
            if key not in SHORT:
                raise PoolError(f"stage {name}: unknown option {key!r}; use "
                                f"{', '.join(SHORT)}")
            check_option(key, [name])
        axes = self.options.get("axes")
        for a in axes if isinstance(axes, tuple) else (axes,):
            if isinstance(a, int) and not -64 <= a < 64:
                raise PoolError(f"stage {name}: axis {a} is out of range; NumPy arrays have "
                                "at most 64 axes")
        # Catch what can be caught without data (bad values, unknown kinds) at parse time;
        # the stand-in length is no user's, so a message never shows it.
        try:
            self.plan(self._probe_shape())
        except PoolError as e:
            raise PoolError(str(e).replace(f"n={_PROBE}, ", "")) from None

    def _probe_shape(self) -> tuple[int, ...]:
        o = self.options
        m = 2
        for key in ("kernel", "output_size"):
            if isinstance(o.get(key), tuple):
                m = len(o[key])
        axes = o.get("axes")
        if axes is not None:
            flat = axes if isinstance(axes, tuple) else (axes,)
            if all(isinstance(a, int) for a in flat):
                m = max([m, *[a + 1 if a >= 0 else -a for a in flat]])
        return (_PROBE,) * m

    def plan(self, shape: tuple[int, ...], axes: Any = None) -> PoolPlan:
        """The plan for an array of ``shape``; ``axes`` applies when the stage sets none."""
        opts = dict(self.options)
        if opts.get("axes") is None and axes is not None:
            opts["axes"] = axes
        return make_plan(tuple(shape), self.kind, **opts)

    def __str__(self) -> str:
        parts = [f"{SHORT[k]}={_format_value(v)}" for k, v in self.options.items()]
        return self.kind + (":" + ",".join(parts) if parts else "")

    @classmethod
    def parse(cls, text: str) -> Stage:
        """One stage: ``KIND[:KEY=VALUE,...]``; lists are written ``3x2``."""
        head, _, rest = text.strip().partition(":")
        kind = head.strip()
        if not kind:
            raise PoolError(f"stage {text.strip()!r} has no kind; write e.g. 'max:k=2'")
        options: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if not eq:
                raise PoolError(f"stage {text.strip()!r}: {item!r} is not KEY=VALUE"
                                + _stage_hint(item, options))
            if key not in KEYS:
                raise PoolError(f"stage {text.strip()!r}: unknown key {key!r}; use "
                                f"{', '.join(sorted(set(SHORT.values())))} or their long names")
            options[KEYS[key]] = parse_value(KEYS[key], value,
                                             f"stage {text.strip()!r}: {KEYS[key]}")
        return cls(kind, options)


def _stage_hint(item: str, options: dict[str, Any]) -> str:
    """What a stray item in a stage most likely meant (``avg:global``, ``k=3,3``)."""
    word = item.strip().lower()
    if word in ("global", "adaptive"):
        return "; for global pooling write out=1"
    if word.isdigit() and options:
        key, value = list(options.items())[-1]
        if BY_PARAM[key].value in ("ints", "padding"):
            last = _format_value(value)
            return (f"; write {SHORT[key]}={last}x{word} inside a stage (commas separate "
                    "keys)")
    return ""


def _format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "x".join(_format_value(e) for e in v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _from_toml_value(param: str, v: Any) -> Any:
    """A TOML value as the stage option ``param`` takes it, or None if its type is wrong.

    TOML has types, so they are checked, not guessed: a boolean is true or false (the
    string "false" is not false), numbers are numbers, lists hold ints (or, for padding,
    [before, after] pairs) and are not empty.
    """
    kind = BY_PARAM[param].value
    if kind == "bool":
        return v if isinstance(v, bool) else None
    if kind == "number":
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if kind == "padding" and isinstance(v, str):
        return v.lower() if v.lower() in ("same", "valid") else None
    if _is_int(v):
        return v
    if not isinstance(v, list) or not v:
        return None
    if all(_is_int(e) for e in v):
        return tuple(v)
    if kind == "padding" and all(isinstance(e, list) and len(e) == 2
                                 and all(_is_int(x) for x in e) for e in v):
        return tuple(tuple(e) for e in v)
    return None


def _toml_words(v: Any) -> str:
    """A TOML value as it was written (short), for messages."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v[:40] + '"'
    if isinstance(v, list):
        more = ", ..." if len(v) > 6 else ""
        return "[" + ", ".join(_toml_words(e) for e in v[:6]) + more + "]"
    if isinstance(v, dict):
        return "a table"
    return "nothing" if v is None else str(v)[:40]


class Pipeline:
    """A chain of pooling stages, applied left to right.

    >>> import numpy as np
    >>> pipe = Pipeline.parse("max:k=3,s=2,p=1 | avg:k=2")
    >>> pipe.output_shape((224, 224))
    (56, 56)
    >>> pipe(np.arange(16.0).reshape(4, 4))
    array([[10.]])
    >>> str(pipe)
    'max:k=3,s=2,p=1 | avg:k=2'
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        if not stages:
            raise PoolError("a pipeline needs at least one stage, e.g. 'max:k=2'")
        self.stages: tuple[Stage, ...] = tuple(stages)

    @classmethod
    def parse(cls, text: str) -> Pipeline:
        """Stages joined by ``|``: ``"max:k=3,s=2,p=1 | avg:k=2"``."""
        if not isinstance(text, str) or not text.strip():
            raise PoolError("the pipeline is empty; write e.g. 'max:k=3,s=2 | avg:k=2'")
        return cls([Stage.parse(part) for part in text.split("|")])

    @classmethod
    def from_toml(cls, source: str | Path) -> Pipeline:
        """A TOML file (or its text) with ``[[stage]]`` tables holding ``kind`` and keys."""
        import tomllib  # only pipeline files need it; keeps start-up quick

        path = Path(source) if not (isinstance(source, str) and "\n" in source) else None
        where = f"pipeline file {source}" if path is not None else "pipeline"
        try:
            text = path.read_bytes().decode("utf-8") if path is not None else str(source)
            data = tomllib.loads(text)
        except OSError as e:
            raise PoolError(f"{where}: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise PoolError(f"{where}: not UTF-8 text (byte {e.start}); TOML files are "
                            "UTF-8") from None
        except tomllib.TOMLDecodeError as e:
            raise PoolError(f"{where}: not valid TOML ({e})") from None
        except RecursionError:
            raise PoolError(f"{where}: not valid TOML (values nested too deeply)") from None
        tables = data.get("stage")
        if (not isinstance(tables, list) or not tables
                or not all(isinstance(t, dict) for t in tables)):
            raise PoolError(f"{where}: needs [[stage]] tables, each with a kind = \"...\"; "
                            f"stage is {_toml_words(tables)}")
        stages = []
        for i, table in enumerate(tables, 1):
            table = dict(table)
            kind = table.pop("kind", None)
            if not isinstance(kind, str):
                raise PoolError(f"{where}: stage {i} has no kind = \"...\"")
            opts = {}
            for key, v in table.items():
                if key not in KEYS:
                    raise PoolError(f"{where}: stage {i} has unknown key {key!r}; use "
                                    f"{', '.join(sorted(KEYS))}")
                value = _from_toml_value(KEYS[key], v)
                if value is None:
                    allowed = _ALLOWED[BY_PARAM[KEYS[key]].value].replace(
                        "a list like 3x2", "a list like [3, 2]")
                    raise PoolError(f"{where}: stage {i}: {key} = {_toml_words(v)} is not "
                                    f"allowed; use {allowed}")
                opts[KEYS[key]] = value
            try:
                stages.append(Stage(kind, opts))
            except TypeError as e:  # a file's mistake is a usage error, like stage text's
                raise PoolError(f"{where}: stage {i}: {e}") from None
            except PoolError as e:
                raise PoolError(f"{where}: stage {i}: {e}") from None
        return cls(stages)

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def __str__(self) -> str:
        return " | ".join(str(s) for s in self.stages)

    def __repr__(self) -> str:
        return f"Pipeline.parse({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self.stages == other.stages

    __hash__ = None  # type: ignore[assignment]

    def plans(self, shape: tuple[int, ...], dtype: Any = "float64",
              axes: Any = None) -> list[PoolPlan]:
        """The plan of every stage for an input of ``shape``, without touching data."""
        plans, shape = [], tuple(shape)
        for stage in self.stages:
            p = stage.plan(shape, axes)
            plans.append(p)
            shape = p.out_shape
        return plans

    def output_shape(self, shape: tuple[int, ...], axes: Any = None) -> tuple[int, ...]:
        """The shape the pipeline produces from an input of ``shape``."""
        return self.plans(shape, axes=axes)[-1].out_shape

    def output_dtype(self, dtype: Any, shape: tuple[int, ...], axes: Any = None) -> np.dtype:
        dt = np.dtype(dtype)
        for p in self.plans(shape, axes=axes):
            dt = result_dtype(p, dt)
        return dt

    def run(self, x: Any, *, axes: Any = None, threads: int | None = None,
            dtype: Any = None) -> tuple[np.ndarray, list[StageTiming]]:
        """Apply every stage; ``dtype`` applies to the final result. Returns timings too."""
        engine = engine_for(x)
        arr = engine.prepare(x)
        timings = []
        for i, stage in enumerate(self.stages):
            plan = stage.plan(arr.shape, axes)
            t0 = time.perf_counter()
            last = i == len(self.stages) - 1
            out = engine.execute(plan, arr, threads=threads, dtype=dtype if last else None)
            timings.append(StageTiming(str(stage), arr.shape, out.shape,
                                       time.perf_counter() - t0))
            arr = out
        return arr, timings

    def __call__(self, x: Any, *, axes: Any = None, threads: int | None = None,
                 dtype: Any = None) -> np.ndarray:
        return self.run(x, axes=axes, threads=threads, dtype=dtype)[0]

