"""HCCL rank tables: both JSON shapes, the helpers, round trips and every error message, exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msq.workers.rank_table import RankDevice, RankTable, RankTableError, load_rank_table

# The server_list shape of MindSpore Serving's examples (ids as strings), two servers.
SERVER_LIST = {
    "version": "1.0",
    "server_count": "2",
    "server_list": [
        {
            "server_id": "10.0.0.1",
            "device": [
                {"device_id": "0", "device_ip": "192.1.27.6", "rank_id": "0"},
                {"device_id": "1", "device_ip": "192.2.27.6", "rank_id": "1"},
            ],
            "host_nic_ip": "reserve",
        },
        {
            "server_id": "10.0.0.2",
            "device": [
                {"device_id": "0", "device_ip": "192.1.27.7", "rank_id": "2"},
                {"device_id": "1", "device_ip": "192.2.27.7", "rank_id": "3"},
            ],
        },
    ],
    "status": "completed",
}
# The older group_list shape: a rank per instance, its device first in `devices`.
GROUP_LIST = {
    "board_id": "0x0000",
    "group_count": "1",
    "group_list": [
        {
            "group_name": "hccl_world_group",
            "device_num": "2",
            "instance_count": "2",
            "instance_list": [
                {"rank_id": "1", "server_id": "10.0.0.1",
                 "devices": [{"device_id": "3", "device_ip": "192.4.27.6"}]},
                {"rank_id": "0", "server_id": "10.0.0.1", "devices": [{"device_id": "2"}]},
            ],
        }
    ],
    "status": "completed",
}  # fmt: skip
TWO_SERVERS = (
    RankDevice(0, 0, "10.0.0.1", "192.1.27.6"),
    RankDevice(1, 1, "10.0.0.1", "192.2.27.6"),
    RankDevice(2, 0, "10.0.0.2", "192.1.27.7"),
    RankDevice(3, 1, "10.0.0.2", "192.2.27.7"),
)


def write(folder: Path, document: object, name: str = "rank_table.json") -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_server_list_ranks_by_rank_id_with_their_servers_and_devices(tmp_path: Path) -> None:
    path = write(tmp_path, SERVER_LIST)
    table = load_rank_table(path, rank_size=4)
    assert table == RankTable(path, TWO_SERVERS)
    assert table.rank_size == 4
    assert table.server_ips == ("10.0.0.1", "10.0.0.2")
    assert table.ranks_on("10.0.0.2") == TWO_SERVERS[2:]
    assert table.ranks_on("10.0.0.9") == ()


def test_group_list_takes_each_instance_s_first_device(tmp_path: Path) -> None:
    table = load_rank_table(write(tmp_path, GROUP_LIST))
    assert table.ranks == (
        RankDevice(0, 2, "10.0.0.1", None),
        RankDevice(1, 3, "10.0.0.1", "192.4.27.6"),
    )


def test_integer_ids_and_ranks_in_any_order_are_accepted(tmp_path: Path) -> None:
    document = {"server_list": [
        {"server_id": "10.0.0.2", "device": [{"device_id": 0, "rank_id": 1}]},
        {"server_id": "10.0.0.1", "device": [{"device_id": 7, "rank_id": 0}]},
    ]}  # fmt: skip
    table = load_rank_table(write(tmp_path, document))
    assert table.ranks == (RankDevice(0, 7, "10.0.0.1"), RankDevice(1, 0, "10.0.0.2"))
    assert table.server_ips == ("10.0.0.1", "10.0.0.2")


def test_to_json_writes_the_server_list_shape_that_loads_back(tmp_path: Path) -> None:
    table = load_rank_table(write(tmp_path, GROUP_LIST))
    document = json.loads(table.to_json())
    assert document == {
        "version": "1.0",
        "server_count": "1",
        "server_list": [{"server_id": "10.0.0.1", "device": [
            {"device_id": "2", "rank_id": "0"},
            {"device_id": "3", "rank_id": "1", "device_ip": "192.4.27.6"},
        ]}],
    }  # fmt: skip
    copy = write(tmp_path, table.to_json(), "copy.json")
    assert load_rank_table(copy).ranks == table.ranks


@st.composite
def tables(draw: st.DrawFn) -> tuple[RankDevice, ...]:
    """Valid tables: ranks 0..n-1 spread over servers, distinct devices on each server."""
    servers = draw(st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2", "host-c"]), min_size=1,
                            max_size=12))  # fmt: skip
    devices = draw(st.permutations(range(16)))
    ips = draw(st.lists(st.none() | st.just("192.168.0.9"), min_size=len(servers),
                        max_size=len(servers)))  # fmt: skip
    order = draw(st.permutations(range(len(servers))))
    used: dict[str, int] = {}
    ranks = []
    for rank_id in order:
        server = servers[rank_id]
        device = devices[used.get(server, 0)]
        used[server] = used.get(server, 0) + 1
        ranks.append(RankDevice(rank_id, device, server, ips[rank_id]))
    return tuple(ranks)


@settings(max_examples=60, deadline=None)
@given(ranks=tables())
def test_any_valid_table_round_trips(tmp_path_factory: pytest.TempPathFactory,
                                     ranks: tuple[RankDevice, ...]) -> None:  # fmt: skip
    folder = tmp_path_factory.mktemp("round-trip")
    servers: dict[str, list[dict[str, Any]]] = {}
    for rank in ranks:  # listed in a shuffled rank order
        device = {"device_id": str(rank.device_id), "rank_id": str(rank.rank_id)}
        if rank.device_ip is not None:
            device["device_ip"] = rank.device_ip
        servers.setdefault(rank.server_ip, []).append(device)
    document = {"server_list": [{"server_id": ip, "device": d} for ip, d in servers.items()]}
    table = load_rank_table(write(folder, document), rank_size=len(ranks))
    assert table.ranks == tuple(sorted(ranks, key=lambda rank: rank.rank_id))
    again = load_rank_table(write(folder, table.to_json(), "again.json"))
    assert again.ranks == table.ranks


def server_list(*devices: dict[str, object], server_id: object = "10.0.0.1") -> dict[str, Any]:
    return {"server_list": [{"server_id": server_id, "device": list(devices)}]}


def device(rank_id: object = "0", device_id: object = "0", **extra: object) -> dict[str, object]:
    return {"rank_id": rank_id, "device_id": device_id, **extra}


S0 = "server_list[0]"
D0 = f"{S0}.device[0]"
G0 = "group_list[0].instance_list[0]"
NOT_INTEGER = 'must be a non-negative integer (e.g. "3"), not'


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("{", "not valid JSON: Expecting property name enclosed in double quotes "
              "(line 1, column 2)"),
        ([], "must be a JSON object, not an array"),
        ({"version": "1.0"}, "has neither 'server_list' nor 'group_list'"),
        ({"server_list": {"a": 1}}, "server_list must be a non-empty array, not an object"),
        ({"server_list": []}, "server_list must be a non-empty array, not []"),
        ({"server_list": ["10.0.0.1"]}, f"{S0} must be a JSON object, not a string"),
        ({"server_list": [{"device": [device()]}]}, f"{S0}.server_id missing"),
        (server_list(device(), server_id=""), f'{S0}.server_id must be a non-empty string, not ""'),
        (server_list(device(), server_id=1), f"{S0}.server_id must be a non-empty string, not 1"),
        ({"server_list": [{"server_id": "h"}]}, f"{S0}.device missing"),
        (server_list(), f"{S0}.device must be a non-empty array, not []"),
        (server_list({"device_id": "0"}), f"{D0}.rank_id missing"),
        (server_list({"rank_id": "0"}), f"{D0}.device_id missing"),
        (server_list(device(rank_id="one")), f'{D0}.rank_id {NOT_INTEGER} "one"'),
        (server_list(device(rank_id="-1")), f'{D0}.rank_id {NOT_INTEGER} "-1"'),
        (server_list(device(rank_id=-1)), f"{D0}.rank_id {NOT_INTEGER} -1"),
        (server_list(device(rank_id="01")), f'{D0}.rank_id {NOT_INTEGER} "01"'),
        (server_list(device(rank_id=" 0")), f'{D0}.rank_id {NOT_INTEGER} " 0"'),
        (server_list(device(rank_id=0.0)), f"{D0}.rank_id {NOT_INTEGER} 0.0"),
        (server_list(device(rank_id=True)), f"{D0}.rank_id {NOT_INTEGER} true"),
        (server_list(device(rank_id=None)), f"{D0}.rank_id {NOT_INTEGER} null"),
        (server_list(device(device_id="٣")), f'{D0}.device_id {NOT_INTEGER} "\\u0663"'),
        (server_list(device(device_ip=7)), f"{D0}.device_ip must be a non-empty string, not 7"),
        (server_list(device(), device("0", "1")),
         f"{S0}.device[1] rank_id 0 is also the rank_id of {D0}"),
        (server_list(device(), device("1", "0")),
         f"{S0}.device[1] device_id 0 on server 10.0.0.1 is also the device of rank 0 ({D0})"),
        (server_list(device("1"), device("2", "1")),
         "rank ids must be 0 to 1, but rank 0 is missing (rank ids listed: 1, 2)"),
        ({"group_list": [{"instance_list": []}]},
         "group_list[0].instance_list must be a non-empty array, not []"),
        ({"group_list": [{"instance_list": [{"rank_id": "0", "devices": [{"device_id": "0"}]}]}]},
         f"{G0}.server_id missing"),
        ({"group_list": [{"instance_list": [{"rank_id": "0", "server_id": "h"}]}]},
         f"{G0}.devices missing"),
        ({"group_list": [{"instance_list": [{"server_id": "h", "devices": [{"device_id": "0"}]}]}]},
         f"{G0}.rank_id missing"),
        ({"group_list": [{"instance_list": [{"rank_id": "0", "server_id": "h",
                                             "devices": [{"device_id": "x"}]}]}]},
         f'{G0}.devices[0].device_id {NOT_INTEGER} "x"'),
    ],
)  # fmt: skip
def test_every_problem_names_the_file_and_the_field(
    tmp_path: Path, document: object, problem: str
) -> None:
    path = write(tmp_path, document)
    with pytest.raises(RankTableError) as error:
        load_rank_table(path)
    assert str(error.value) == f"rank table {path}: {problem}"


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RankTableError) as error:
        load_rank_table(tmp_path / "absent.json")
    assert str(error.value) == f"rank table {tmp_path / 'absent.json'}: no such file"
    with pytest.raises(RankTableError) as error:
        load_rank_table(tmp_path)
    assert str(error.value) == (
        f"rank table {tmp_path}: cannot be read: [Errno 21] Is a directory: '{tmp_path}'"
    )
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(RankTableError) as error:
        load_rank_table(binary)
    assert str(error.value).startswith(f"rank table {binary}: cannot be read: 'utf-8' codec")


def test_a_rank_count_other_than_the_servable_s_is_refused_in_mindspore_serving_s_words(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, SERVER_LIST)
    with pytest.raises(RankTableError) as error:
        load_rank_table(path, rank_size=8)
    assert str(error.value) == (
        f"Rank size 4 declared in rank table file '{path}' not equal to 8 declared in "
        "servable config"
    )
    assert isinstance(error.value, ValueError)
