"""Pipelines: the stage syntax (`max:k=3,s=2,p=1 | avg:k=2`), TOML files, and running a chain."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PoolError
from .kernels import ALIASES, KINDS
from .plan import PoolPlan, make_plan
from .pool import execute, result_dtype

# Stage keys: the short and long spellings of every pool() option a stage may set.
KEYS: dict[str, str] = {
    "k": "kernel", "kernel": "kernel",
    "s": "stride", "stride": "stride",
    "p": "padding", "padding": "padding",
    "d": "dilation", "dilation": "dilation",
    "ceil": "ceil_mode", "ceil_mode": "ceil_mode",
    "count_pad": "count_include_pad", "count_include_pad": "count_include_pad",
    "divisor": "divisor_override", "divisor_override": "divisor_override",
    "norm": "norm",
    "out": "output_size", "output_size": "output_size",
    "axes": "axes",
    "ignore_nan": "ignore_nan",
}
SHORT = {"kernel": "k", "stride": "s", "padding": "p", "dilation": "d", "ceil_mode": "ceil",
         "count_include_pad": "count_pad", "divisor_override": "divisor", "norm": "norm",
         "output_size": "out", "axes": "axes", "ignore_nan": "ignore_nan"}
_BOOL_KEYS = {"ceil_mode", "count_include_pad", "ignore_nan"}
_FLOAT_KEYS = {"norm", "divisor_override"}


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
        name = self.kind.lower() if isinstance(self.kind, str) else self.kind
        name = ALIASES.get(name, name)
        if name not in KINDS:
            raise PoolError(f"unknown kind {self.kind!r}; use one of {', '.join(KINDS)}")
        object.__setattr__(self, "kind", name)
        for key in self.options:
            if key not in SHORT:
                raise PoolError(f"stage {name}: unknown option {key!r}; use "
                                f"{', '.join(SHORT)}")
        # Catch what can be caught without data (bad values, unknown kinds) at parse time.
        self.plan(self._probe_shape())

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
        return (1 << 20,) * m

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
                raise PoolError(f"stage {text.strip()!r}: {item!r} is not KEY=VALUE")
            if key not in KEYS:
                raise PoolError(f"stage {text.strip()!r}: unknown key {key!r}; use "
                                f"{', '.join(sorted(set(SHORT.values())))} or their long names")
            options[KEYS[key]] = _parse_value(KEYS[key], value.strip(), text.strip())
        return cls(kind, options)


def _parse_value(key: str, value: str, where: str) -> Any:
    low = value.lower()
    if key in _BOOL_KEYS:
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise PoolError(f"stage {where!r}: {key} needs true or false, got {value!r}")
    if key in _FLOAT_KEYS:
        try:
            f = float(value)
        except ValueError:
            raise PoolError(f"stage {where!r}: {key} needs a number, got {value!r}") from None
        return int(f) if f.is_integer() and key == "divisor_override" else f
    if key == "padding" and low in ("same", "valid"):
        return low
    try:
        items = tuple(int(v) for v in low.split("x"))
    except ValueError:
        allowed = "an int, a list like 3x2, 'same' or 'valid'" if key == "padding" \
            else "an int or a list like 3x2"
        raise PoolError(f"stage {where!r}: {key} needs {allowed}, got {value!r}") from None
    return items[0] if len(items) == 1 else items


def _format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "x".join(_format_value(e) for e in v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _from_toml_value(key: str, v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_from_toml_value(key, e) for e in v)
    return v


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
        try:
            text = path.read_text() if path is not None else str(source)
            data = tomllib.loads(text)
        except OSError as e:
            raise PoolError(f"pipeline file {source}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise PoolError(f"pipeline file {source}: not valid TOML ({e})") from None
        tables = data.get("stage")
        if not isinstance(tables, list) or not tables:
            raise PoolError(f"pipeline file {source}: needs [[stage]] tables with a kind")
        stages = []
        for i, table in enumerate(tables, 1):
            table = dict(table)
            kind = table.pop("kind", None)
            if not isinstance(kind, str):
                raise PoolError(f"pipeline file {source}: stage {i} has no kind = \"...\"")
            opts = {}
            for key, v in table.items():
                if key not in KEYS:
                    raise PoolError(f"pipeline file {source}: stage {i} has unknown key {key!r}")
                opts[KEYS[key]] = _from_toml_value(key, v)
            try:
                stages.append(Stage(kind, opts))
            except TypeError as e:  # a file's mistake is a usage error, like stage text's
                raise PoolError(f"pipeline file {source}: stage {i}: {e}") from None
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
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"pooling needs a bool, integer or floating array, got {arr.dtype}")
        timings = []
        for i, stage in enumerate(self.stages):
            plan = stage.plan(arr.shape, axes)
            t0 = time.perf_counter()
            last = i == len(self.stages) - 1
            out = execute(plan, arr, threads=threads, dtype=dtype if last else None)
            timings.append(StageTiming(str(stage), arr.shape, out.shape,
                                       time.perf_counter() - t0))
            arr = out
        return arr, timings

    def __call__(self, x: Any, *, axes: Any = None, threads: int | None = None,
                 dtype: Any = None) -> np.ndarray:
        return self.run(x, axes=axes, threads=threads, dtype=dtype)[0]

