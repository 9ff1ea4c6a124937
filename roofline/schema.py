"""One validation layer for the files the tool reads: each field's type and range, and a fix in every message.

Every reader (IR files, calibration files, latency tables, accuracy CSVs, perf
results) checks what it reads through ``Fields``, so a bad file always gets
one line that names the file, the field, what is wrong and how to fix it,
instead of a TypeError from deep inside the analysis:

    resnet.json: layers[3].stride[0] must be an integer >= 1, got 0; fix the file or re-trace the model
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from roofline.errors import RooflineError

_MISSING = object()


def type_name(value: Any) -> str:
    """What a JSON value is, in the words of the JSON spec."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


class Fields:
    """The fields of one JSON object in ``source``; ``where`` locates the object inside the file."""

    def __init__(self, data: Any, source: str, fix: str, where: str = "") -> None:
        self.source, self.fix, self.where = source, fix, where
        if not isinstance(data, Mapping):
            raise self.error("", f"must be an object, got {type_name(data)}")
        self.data = data

    def error(self, name: str, problem: str) -> RooflineError:
        place = f"{self.where}.{name}" if self.where and name else self.where or name or "the top level"
        return RooflineError(f"{self.source}: {place} {problem}; {self.fix}")

    def _get(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise self.error(name, "is missing")
        return default

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        return self._get(name, default)

    def integer(
        self, name: str, minimum: int | None = None, maximum: int | None = None, default: Any = _MISSING
    ) -> int:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        return check_integer(value, minimum, maximum, lambda problem: self.error(name, problem))

    def number(
        self, name: str, minimum: float | None = None, maximum: float | None = None, *,
        positive: bool = False, default: Any = _MISSING,
    ) -> float:  # fmt: skip
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(name, f"must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise self.error(name, f"must be positive, got {value!r}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self.error(name, f"must be in [{minimum}, {maximum}], got {value!r}")
        return float(value)

    def string(self, name: str, choices: tuple[str, ...] | None = None, default: Any = _MISSING) -> str:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or not value:
            raise self.error(name, f"must be a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def object(self, name: str, default: Any = _MISSING) -> Fields:
        value = self._get(name, default)
        where = f"{self.where}.{name}" if self.where else name
        return Fields(value, self.source, self.fix, where)

    def list(self, name: str, nonempty: bool = False, default: Any = _MISSING) -> list:
        value = self._get(name, default)
        if not isinstance(value, (list, tuple)):
            raise self.error(name, f"must be a list, got {type_name(value)}")
        if nonempty and not value:
            raise self.error(name, "must not be empty")
        return list(value)


def check_integer(value: Any, minimum: int | None, maximum: int | None, error) -> int:
    """``value`` as an int in [minimum, maximum], else ``error(problem)`` is raised; a bool is not an int."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise error(f"must be an integer, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise error(f"must be an integer {bounds}, got {value!r}")
    return value
