"""The model repository as `msq serve` sees it: the servables of a servable directory, their
version folders, and the version policy that picks which versions to serve (pure, no processes).

A version policy is Triton's / TF Serving's: `latest` or `latest:N` (the N highest versions;
the default is `latest:1`, the newest, as MindSpore Serving serves), `all`, or
`specific:V[,V...]`. `--version-policy POLICY` sets the default, `--version-policy
NAME=POLICY` one servable's (repeatable); `Policies.parse` is the hook a settings file uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


class PolicyError(ValueError):
    """A version policy that cannot be read; the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    """Which versions of a servable to serve: the `latest` N, `all`, or `specific` ones."""

    kind: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        """`latest`, `latest:N`, `all` or `specific:V[,V...]`; PolicyError otherwise."""
        kind, _, arguments = text.strip().partition(":")
        if kind == "all" and not arguments:
            return cls("all", 0)
        if kind == "latest" and (not arguments or _positive(arguments)):
            return cls("latest", int(arguments or 1))
        numbers = arguments.split(",")
        if kind == "specific" and all(_positive(number) for number in numbers):
            return cls("specific", 0, tuple(sorted({int(number) for number in numbers})))
        raise PolicyError(
            f"invalid version policy {text!r}: use latest, latest:N, all or specific:V[,V...] "
            "(N and V integers >= 1)"
        )

    def select(self, versions: Iterable[int]) -> list[int]:
        """The versions to serve among those found, ascending."""
        found = sorted(set(versions))
        if self.kind == "all":
            return found
        if self.kind == "latest":
            return found[-self.count :]
        return [version for version in found if version in self.versions]

    def __str__(self) -> str:
        if self.kind == "specific":
            return "specific:" + ",".join(map(str, self.versions))
        return "all" if self.kind == "all" else f"latest:{self.count}"


@dataclass(frozen=True, slots=True)
class Policies:
    """The default version policy and the policies of named servables."""

    default: VersionPolicy = field(default_factory=VersionPolicy)
    by_servable: dict[str, VersionPolicy] = field(default_factory=dict)

    @classmethod
    def parse(cls, items: Iterable[str]) -> Policies:
        """From `POLICY` (the default) and `NAME=POLICY` items, the later winning."""
        default = VersionPolicy()
        by_servable: dict[str, VersionPolicy] = {}
        for item in items:
            name, equals, text = item.rpartition("=")
            if equals and not name:
                raise PolicyError(f"invalid version policy {item!r}: use NAME=POLICY or POLICY")
            policy = VersionPolicy.parse(text)
            if name:
                by_servable[name] = policy
            else:
                default = policy
        return cls(default, by_servable)

    def of(self, servable: str) -> VersionPolicy:
        """The policy of one servable."""
        return self.by_servable.get(servable, self.default)


def scan(servable_dir: Path) -> dict[str, list[int]]:
    """Every servable of the directory (a folder with servable_config.py) and its version
    folders (named by an integer >= 1), ascending."""
    found: dict[str, list[int]] = {}
    for config in sorted(servable_dir.glob("*/servable_config.py")):
        folder = config.parent
        found[folder.name] = sorted(
            int(entry.name)
            for entry in folder.iterdir()
            if entry.is_dir() and _positive(entry.name)
        )
    return found


def signature(folder: Path) -> str:
    """What a version folder holds: each file's path, size and modification time ("" when the
    folder is gone); it changes while files are copied in."""
    if not folder.is_dir():
        return ""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return ";".join(
        f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}"
        for path, stat in ((path, path.stat()) for path in files)
    )


def _positive(text: str) -> bool:
    return text.isdecimal() and text.isascii() and int(text) >= 1
