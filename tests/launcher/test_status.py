"""`msq status` without processes: options, the JSON shape and the tables of given answers."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console

from msq.launcher import status
from msq.launcher.cli import build_parser, main
from msq.proto.messages import BrokerInfo, RouteInfo, RouteWindow, Status, WorkerInfo
from tests.processes import free_port

A, B = "tcp://10.0.0.1:5600", "tcp://10.0.0.2:5600"
WINDOW = RouteWindow(30.0, requests=60, instances=240, completed=236, p50_ms=4.25, p99_ms=81.0)
IDLE = RouteWindow(30.0, requests=0, instances=0, completed=0, p50_ms=None, p99_ms=None)
ANSWER = Status(
    1,
    [],
    {},
    BrokerInfo("c0ffee", 4321, 3723.0),
    [
        WorkerInfo("bb", "digits", 2, "gpu:1", 602, capacity=2, free=2, jobs=0, silent_s=0.31),
        WorkerInfo("aa", "add", 1, "cpu", 601, capacity=2, free=0, jobs=2, silent_s=1.25),
    ],
    [
        RouteInfo("add", 1, "add_common", queued=17, in_flight=2, workers=1, window=WINDOW),
        RouteInfo("digits", 2, "predict", queued=0, in_flight=0, workers=1, window=IDLE),
    ],
)


def text(views: list[status.BrokerView]) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(status.render(views))
    return out.getvalue()


def row(output: str, *starts: str) -> list[str]:
    """The cells of the one line of `output` whose cells begin with `starts`."""
    (line,) = [
        line.split() for line in output.splitlines() if line.split()[: len(starts)] == list(starts)
    ]
    return line


def test_the_json_lists_brokers_workers_and_routes_with_rates() -> None:
    data = status.as_json([status.BrokerView(A, ANSWER), status.BrokerView(B, None, "no answer")])
    assert data["brokers"] == [
        {"address": A, "answered": True, "error": None, "incarnation": "c0ffee", "pid": 4321,
         "uptime_s": 3723.0},
        {"address": B, "answered": False, "error": "no answer"},
    ]  # fmt: skip
    assert [(w["broker"], w["pid"], w["busy"], w["free"]) for w in data["workers"]] == [
        (A, 601, 2, 0),
        (A, 602, 0, 2),
    ]
    assert data["workers"][0] == {
        "broker": A, "worker_id": "aa", "servable": "add", "version": 1, "device": "cpu",
        "pid": 601, "capacity": 2, "free": 0, "jobs": 2, "silent_s": 1.25, "busy": 2,
    }  # fmt: skip
    add, digits = data["routes"]
    assert add == {
        "broker": A, "servable": "add", "version": 1, "method": "add_common", "queued": 17,
        "in_flight": 2, "workers": 1,
        "window": {"seconds": 30.0, "requests": 60, "instances": 240, "completed": 236,
                   "p50_ms": 4.25, "p99_ms": 81.0, "requests_per_s": 2.0,
                   "instances_per_s": 8.0},
    }  # fmt: skip
    assert digits["window"]["p50_ms"] is None and digits["window"]["requests_per_s"] == 0.0


def test_a_window_of_no_time_has_no_rate() -> None:
    assert status.rates(RouteWindow(0.0, 0, 0, 0, None, None)) == (0.0, 0.0)


def test_the_tables_show_the_key_cells() -> None:
    output = text([status.BrokerView(A, ANSWER)])
    assert row(output, A) == [A, "up", "1h02m03s", "c0ffee", "4321"]
    assert row(output, "add", "1", "cpu") == [
        "add",
        "1",
        "cpu",
        "601",
        "2",
        "0",
        "2",
        "1.2s",
        "ago",
    ]
    assert row(output, "digits", "2", "gpu:1") == [
        "digits", "2", "gpu:1", "602", "0", "2", "0", "0.3s", "ago"
    ]  # fmt: skip
    assert row(output, "add", "1", "add_common") == [
        "add", "1", "add_common", "17", "2", "1", "2.0", "8.0", "4.2", "81.0"
    ]  # fmt: skip
    assert row(output, "digits", "2", "predict")[-4:] == ["0.0", "0.0", "-", "-"]
    # one broker: no broker column
    assert row(output, "servable", "ver", "device")[-1] == "heard"
    assert row(output, "servable", "ver", "method")[-1] == "ms"


def test_several_brokers_get_a_broker_column_and_a_silent_one_says_why() -> None:
    output = text([status.BrokerView(A, ANSWER), status.BrokerView(B, None, "no answer in 2 s")])
    assert row(output, B) == [B, "no", "answer", "in", "2", "s", "-", "-", "-"]
    assert row(output, A, "add", "1", "add_common")[3] == "add_common"
    assert row(output, "broker", "servable", "ver", "method")
    assert row(output, "broker", "servable", "ver", "device")


def test_options() -> None:
    args = build_parser().parse_args(["status"])
    assert (args.broker, args.watch, args.json) == (None, None, False)
    args = build_parser().parse_args(["status", "--broker", A, "--broker", B, "--watch", "--json"])
    assert (args.broker, args.watch, args.json) == ([A, B], status.DEFAULT_WATCH_S, True)
    assert build_parser().parse_args(["status", "--watch", "0.5"]).watch == 0.5
    for bad in (["--watch", "0"], ["--timeout", "-1"], ["--watch", "soon"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["status", *bad])


def test_a_broker_that_does_not_answer_fails_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    assert main(["status", "--json", "--broker", address, "--timeout", "0.3"]) == 1
    assert 0.3 <= time.monotonic() - started < 3.0
    assert '"error": "no answer within 0.3 s"' in capsys.readouterr().out


def test_a_comma_separated_list_asks_each_broker(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    assert main(["status", "--json", "--broker", f"{first},{second}", "--timeout", "0.2"]) == 1
    brokers = json.loads(capsys.readouterr().out)["brokers"]
    assert [broker["address"] for broker in brokers] == [first, second]
    assert main(["status", "--broker", "127.0.0.1:5600"]) == 2
    assert "invalid broker endpoint '127.0.0.1:5600'" in capsys.readouterr().err


def test_unusable_curve_key_files_stop_the_command_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "absent.key_secret"
    argv = ["status", "--curve-secret-key", str(absent)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "msq status: --curve-secret-key and --curve-server-key go together\n"
    )
    assert main([*argv, "--curve-server-key", str(tmp_path / "broker.key")]) == 2
    assert capsys.readouterr().err == f"msq status: no such key file: {absent}\n"


def test_watch_prints_a_json_line_per_refresh_until_interrupted() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    command = ["msq", "status", "--json", "--watch", "0.1", "--timeout", "0.1", "--broker", address]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0
    for line in lines:
        assert json.loads(line)["brokers"] == [
            {"address": address, "answered": False, "error": "no answer within 0.1 s"}
        ]
