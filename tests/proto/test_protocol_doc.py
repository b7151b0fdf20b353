"""docs/protocol.md names every message and nested type with exactly its declared fields."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

from msq.proto.messages import Message

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
#: `Name(field, other=, ...)` in backticks: a declaration as the page shows it.
SIGNATURE = re.compile(r"`([A-Z]\w*)\(([^`()]*)\)`")


def declared_types() -> list[type]:
    """Every message, and every dataclass a message's fields reach."""
    found: list[type] = []
    pending: list[object] = list(typing.get_args(Message))
    while pending:
        hint = pending.pop()
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if hint in found:
                continue
            found.append(hint)
            pending.extend(typing.get_type_hints(hint).values())
        pending.extend(typing.get_args(hint))
    return found


def shown_fields(cls: type) -> list[str]:
    """A declaration's fields as the page must show them: `name`, or `name=` with a default."""
    return [
        f"{f.name}=" if f.default is not dataclasses.MISSING or f.default_factory is not
        dataclasses.MISSING else f.name
        for f in dataclasses.fields(cls)
        if f.init
    ]  # fmt: skip


def documented() -> dict[str, list[list[str]]]:
    shown: dict[str, list[list[str]]] = {}
    for name, fields in SIGNATURE.findall(DOC.read_text()):
        shown.setdefault(name, []).append([f.strip() for f in fields.split(",") if f.strip()])
    return shown


def test_every_message_and_nested_type_is_documented_with_its_fields() -> None:
    shown = documented()
    problems = []
    for cls in declared_types():
        expected = shown_fields(cls)
        if cls.__name__ not in shown:
            problems.append(f"{cls.__name__} is missing from {DOC.name}")
        elif any(fields != expected for fields in shown[cls.__name__]):
            problems.append(f"{cls.__name__}{shown[cls.__name__]} should show fields {expected}")
    assert problems == []


def test_the_page_names_no_stale_type() -> None:
    names = {cls.__name__ for cls in declared_types()}
    assert set(documented()) - names == {"WireTensor"}


def test_the_check_sees_nested_types() -> None:
    names = {cls.__name__ for cls in declared_types()}
    assert {"Job", "MethodSignature", "TensorSpec", "BatchPolicy", "Failure"} <= names
