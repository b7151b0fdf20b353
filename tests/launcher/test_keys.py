"""`msq keys generate`: the files it writes, their modes, and what it refuses."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from msq.launcher.cli import main
from msq.proto.curve import load_authorized, load_key_pair, load_public_key


def modes(directory: Path) -> dict[str, int]:
    return {
        str(path.relative_to(directory)): stat.S_IMODE(path.stat().st_mode)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_the_standard_set_is_three_pairs_and_the_client_keys_authorized(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate", str(tmp_path)]) == 0
    assert modes(tmp_path) == {
        "authorized-gateways/gateway.key": 0o644,
        "authorized-workers/worker.key": 0o644,
        "broker.key": 0o644,
        "broker.key_secret": 0o600,
        "gateway.key": 0o644,
        "gateway.key_secret": 0o600,
        "worker.key": 0o644,
        "worker.key_secret": 0o600,
    }
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(tmp_path / name) for name in modes(tmp_path))
    pairs = {
        name: load_key_pair(tmp_path / f"{name}.key_secret")
        for name in ("broker", "worker", "gateway")
    }
    assert len({pair.public for pair in pairs.values()}) == 3
    assert load_authorized(tmp_path / "authorized-workers") == {pairs["worker"].public}
    assert load_authorized(tmp_path / "authorized-gateways") == {pairs["gateway"].public}


def test_a_named_pair_can_be_authorized_beside_the_others(tmp_path: Path) -> None:
    assert main(["keys", "generate", str(tmp_path)]) == 0
    argv = ["keys", "generate", str(tmp_path), "--name", "host2", "--name", "host3"]
    assert main([*argv, "--authorize", "workers"]) == 0
    workers = load_authorized(tmp_path / "authorized-workers")
    assert workers == {
        load_public_key(tmp_path / f"{name}.key") for name in ("worker", "host2", "host3")
    }
    assert stat.S_IMODE((tmp_path / "host2.key_secret").stat().st_mode) == 0o600


def test_existing_keys_are_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate", str(tmp_path), "--name", "broker"]) == 0
    before = (tmp_path / "broker.key_secret").read_bytes()
    capsys.readouterr()
    assert main(["keys", "generate", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"msq keys: {tmp_path / 'broker.key'} exists; remove it first to make a new key pair\n"
    )
    assert (tmp_path / "broker.key_secret").read_bytes() == before


def test_authorize_needs_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", str(tmp_path), "--authorize", "gateways"]) == 2
    assert capsys.readouterr().err == "msq keys: --authorize goes with --name\n"
    assert list(tmp_path.iterdir()) == []
