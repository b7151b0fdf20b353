"""HCCL rank tables: which rank runs on which server and device (pure: a file in, values out).

Both JSON shapes MindSpore Serving read are accepted:

- `{"server_list": [{"server_id": IP, "device": [{"device_id", "device_ip", "rank_id"}]}]}`
- `{"group_list": [{"instance_list": [{"server_id": IP, "rank_id",
  "devices": [{"device_id", "device_ip"}]}]}]}` (the older one; a rank's device is the first
  of its `devices`)

Ids are decimal strings as HCCL writes them (`"3"`) or JSON integers. Unlike MindSpore Serving,
ranks may be listed in any order (they are sorted), and device ids are not limited to 8 per server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RankDevice", "RankTable", "RankTableError", "load_rank_table"]


class RankTableError(ValueError):
    """A rank table that cannot be used; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class RankDevice:
    """One rank: its id, the device it runs on, its server's IP and the device's own IP."""

    rank_id: int
    device_id: int
    server_ip: str
    device_ip: str | None = None


@dataclass(frozen=True, slots=True)
class RankTable:
    """A checked rank table: `ranks` sorted by rank id, which are 0 .. rank_size - 1."""

    path: Path
    ranks: tuple[RankDevice, ...]

    @property
    def rank_size(self) -> int:
        """The number of ranks."""
        return len(self.ranks)

    @property
    def server_ips(self) -> tuple[str, ...]:
        """Every server's IP, in the order of their first rank."""
        return tuple(dict.fromkeys(rank.server_ip for rank in self.ranks))

    def ranks_on(self, server_ip: str) -> tuple[RankDevice, ...]:
        """The ranks of one server, by rank id (none for an IP the table does not list)."""
        return tuple(rank for rank in self.ranks if rank.server_ip == server_ip)

    def to_json(self) -> str:
        """This table in the `server_list` shape, ids as strings (as HCCL writes them)."""
        servers = [
            {
                "server_id": ip,
                "device": [_device_document(rank) for rank in self.ranks_on(ip)],
            }
            for ip in self.server_ips
        ]
        document = {"version": "1.0", "server_count": str(len(servers)), "server_list": servers}
        return json.dumps(document, indent=2)


def _device_document(rank: RankDevice) -> dict[str, str]:
    document = {"device_id": str(rank.device_id), "rank_id": str(rank.rank_id)}
    if rank.device_ip is not None:
        document["device_ip"] = rank.device_ip
    return document


def load_rank_table(path: Path, rank_size: int | None = None) -> RankTable:
    """Read and check the rank table at `path`; with `rank_size`, it must list that many ranks.

    Raises `RankTableError` naming the file and the field at fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RankTableError(f"rank table {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RankTableError(f"rank table {path}: cannot be read: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RankTableError(
            f"rank table {path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    reader = _Reader(path)
    if not isinstance(document, dict):
        raise reader.error("", f"must be a JSON object, not {_kind(document)}")
    if "group_list" in document:
        ranks = reader.group_list(document)
    elif "server_list" in document:
        ranks = reader.server_list(document)
    else:
        raise reader.error("", "has neither 'server_list' nor 'group_list'")
    table = RankTable(path, reader.checked(ranks))
    if rank_size is not None and table.rank_size != rank_size:
        raise RankTableError(
            f"Rank size {table.rank_size} declared in rank table file '{path}' not equal to "
            f"{rank_size} declared in servable config"
        )
    return table


class _Reader:
    """Reads one file's fields; every error names the file and the field's place in it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, problem: str) -> RankTableError:
        field = f" {where}" if where else ""
        return RankTableError(f"rank table {self.path}:{field} {problem}")

    def server_list(self, document: Mapping[str, object]) -> list[tuple[RankDevice, str]]:
        ranks = []
        for index, server in enumerate(self.array(document, "server_list", "")):
            where = f"server_list[{index}]"
            server_ip = self.text(server, "server_id", where)
            for position, device in enumerate(self.array(server, "device", where)):
                place = f"{where}.device[{position}]"
                rank = RankDevice(
                    rank_id=self.integer(device, "rank_id", place),
                    device_id=self.integer(device, "device_id", place),
                    server_ip=server_ip,
                    device_ip=self.optional_text(device, "device_ip", place),
                )
                ranks.append((rank, place))
        return ranks

    def group_list(self, document: Mapping[str, object]) -> list[tuple[RankDevice, str]]:
        ranks = []
        for index, group in enumerate(self.array(document, "group_list", "")):
            where = f"group_list[{index}]"
            for position, instance in enumerate(self.array(group, "instance_list", where)):
                place = f"{where}.instance_list[{position}]"
                device = self.array(instance, "devices", place)[0]
                rank = RankDevice(
                    rank_id=self.integer(instance, "rank_id", place),
                    device_id=self.integer(device, "device_id", f"{place}.devices[0]"),
                    server_ip=self.text(instance, "server_id", place),
                    device_ip=self.optional_text(device, "device_ip", f"{place}.devices[0]"),
                )
                ranks.append((rank, place))
        return ranks

    def checked(self, ranks: list[tuple[RankDevice, str]]) -> tuple[RankDevice, ...]:
        """The ranks sorted, once each, numbered 0 .. n-1, one rank per device of a server."""
        by_id: dict[int, tuple[RankDevice, str]] = {}
        by_device: dict[tuple[str, int], tuple[RankDevice, str]] = {}
        for rank, place in ranks:
            if rank.rank_id in by_id:
                raise self.error(
                    place, f"rank_id {rank.rank_id} is also the rank_id of {by_id[rank.rank_id][1]}"
                )
            by_id[rank.rank_id] = (rank, place)
            device = (rank.server_ip, rank.device_id)
            if device in by_device:
                twin, twin_place = by_device[device]
                raise self.error(
                    place,
                    f"device_id {rank.device_id} on server {rank.server_ip} is also the device "
                    f"of rank {twin.rank_id} ({twin_place})",
                )
            by_device[device] = (rank, place)
        missing = sorted(set(range(len(ranks))) - set(by_id))
        if missing:
            raise self.error(
                "",
                f"rank ids must be 0 to {len(ranks) - 1}, but rank {missing[0]} is missing "
                f"(rank ids listed: {', '.join(map(str, sorted(by_id)))})",
            )
        return tuple(by_id[rank_id][0] for rank_id in sorted(by_id))

    def member(self, table: object, key: str, where: str) -> object:
        if not isinstance(table, dict):
            raise self.error(where, f"must be a JSON object, not {_kind(table)}")
        if key not in table:
            raise self.error(_join(where, key), "missing")
        return table[key]

    def array(self, table: object, key: str, where: str) -> Sequence[object]:
        value = self.member(table, key, where)
        if not isinstance(value, list) or not value:
            raise self.error(_join(where, key), f"must be a non-empty array, not {_show(value)}")
        return value

    def text(self, table: object, key: str, where: str) -> str:
        value = self.member(table, key, where)
        if not isinstance(value, str) or not value:
            raise self.error(_join(where, key), f"must be a non-empty string, not {_show(value)}")
        return value

    def optional_text(self, table: object, key: str, where: str) -> str | None:
        if isinstance(table, dict) and key not in table:
            return None
        return self.text(table, key, where)

    def integer(self, table: object, key: str, where: str) -> int:
        value = self.member(table, key, where)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and _is_decimal(value):
            return int(value)
        raise self.error(
            _join(where, key), f'must be a non-negative integer (e.g. "3"), not {_show(value)}'
        )


def _is_decimal(text: str) -> bool:
    """Digits only, without a sign, spaces or a leading zero (as HCCL writes ids)."""
    return text.isascii() and text.isdigit() and str(int(text)) == text


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _show(value: object) -> str:
    """A short form of `value`: JSON for scalars and empty containers, else its kind."""
    if isinstance(value, (str, int, float, bool)) or value in ([], {}):
        return json.dumps(value)
    return _kind(value)
