"""`msq serve --config FILE`: read the TOML file, lay command-line values over it, and print
the effective settings back as TOML (`--print-config`)."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msq.launcher.settings import Deployment, SettingsError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def read(path: Path) -> dict[str, Any]:
    """The TOML document of `path`; `SettingsError` naming the file when it cannot be read."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None


def overlay(document: Mapping[str, Any], values: Mapping[str, object]) -> dict[str, Any]:
    """`document` with `values` (by dotted key, e.g. "grpc.tls.cert") set over it."""
    merged = _copy(document)
    for dotted, value in values.items():
        *tables, key = dotted.split(".")
        table = merged
        for name in tables:
            inner = table.setdefault(name, {})
            if not isinstance(inner, dict):
                raise SettingsError(f"{name}: must be a table, not {inner!r}")
            table = inner
        table[key] = value
    return merged


def _copy(table: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in table.items()}


def to_toml(settings: Deployment | Mapping[str, Any]) -> str:
    """Settings as a TOML document that `--config` reads back (unset values left out)."""
    lines: list[str] = []
    _write_table(lines, [], _as_table(settings))
    return "\n".join(lines).strip() + "\n"


def _as_table(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {spec.name: getattr(value, spec.name) for spec in dataclasses.fields(value)}
    return dict(value)


def _is_table(value: object) -> bool:
    return isinstance(value, dict) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    )


def _write_table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if v is not None and not _is_table(v)}
    arrays = {k: v for k, v in scalars.items() if isinstance(v, tuple) and any(map(_is_table, v))}
    for key, value in scalars.items():
        if key not in arrays:
            lines.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in table.items():
        if _is_table(value):
            inner = _as_table(value)
            header = ".".join(_key(k) for k in [*path, key])
            if any(not _is_table(v) and v is not None for v in inner.values()):
                lines += ["", f"[{header}]"]
            _write_table(lines, [*path, key], inner)
    for key, entries in arrays.items():
        for entry in entries:
            lines += ["", f"[[{'.'.join(_key(k) for k in [*path, key])}]]"]
            _write_table(lines, [*path, key], _as_table(entry))


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _scalar(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))
