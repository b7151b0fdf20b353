"""Version policies and the scan of a servable directory (pure: no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msq.launcher.cli import build_parser
from msq.launcher.control import ControlMode, ControlSettings
from msq.launcher.repository import Policies, PolicyError, VersionPolicy, scan, signature
from msq.launcher.serve import settings_from


def test_policies_pick_the_latest_n_all_or_specific_versions() -> None:
    found = [3, 1, 7, 4]
    assert VersionPolicy().select(found) == [7]
    assert VersionPolicy.parse("latest").select(found) == [7]
    assert VersionPolicy.parse("latest:2").select(found) == [4, 7]
    assert VersionPolicy.parse("latest:9").select(found) == [1, 3, 4, 7]
    assert VersionPolicy.parse("all").select(found) == [1, 3, 4, 7]
    assert VersionPolicy.parse("specific:4,1,2").select(found) == [1, 4]
    assert VersionPolicy.parse("latest").select([]) == []
    assert [str(VersionPolicy.parse(text)) for text in ("latest", "all", "specific:3,1")] == [
        "latest:1", "all", "specific:1,3",
    ]  # fmt: skip


BAD_POLICIES = ["", "newest", "latest:0", "latest:x", "all:2", "specific", "specific:1,,2"]


@pytest.mark.parametrize("text", BAD_POLICIES)
def test_a_bad_policy_says_what_is_accepted(text: str) -> None:
    with pytest.raises(PolicyError) as bad:
        VersionPolicy.parse(text)
    assert str(bad.value) == (
        f"invalid version policy {text!r}: use latest, latest:N, all or specific:V[,V...] "
        "(N and V integers >= 1)"
    )


def test_a_default_and_per_servable_policies() -> None:
    policies = Policies.parse(["all", "add=latest:2", "digits=specific:1", "latest"])
    assert policies.of("other") == VersionPolicy("latest", 1)
    assert policies.of("add") == VersionPolicy("latest", 2)
    assert policies.of("digits") == VersionPolicy("specific", 0, (1,))
    with pytest.raises(PolicyError, match="use NAME=POLICY or POLICY"):
        Policies.parse(["=all"])


def test_scan_finds_servables_and_their_version_folders(tmp_path: Path) -> None:
    for folder in ("add/1", "add/10", "add/2", "add/0", "add/x", "add/.3", "lone/7", "bare"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "add" / "3").write_text("a file, not a version folder")
    for name in ("add", "bare"):
        (tmp_path / name / "servable_config.py").write_text("")
    assert scan(tmp_path) == {"add": [1, 2, 10], "bare": []}


def test_a_folder_signature_changes_while_files_are_copied_in(tmp_path: Path) -> None:
    folder = tmp_path / "1"
    assert signature(folder) == ""
    folder.mkdir()
    empty = signature(folder)
    (folder / "model.mindir").write_bytes(b"12")
    first = signature(folder)
    assert first != empty
    assert signature(folder) == first
    with (folder / "model.mindir").open("ab") as model:
        model.write(b"34")
    assert signature(folder) != first


def settings(tmp_path: Path, *argv: str) -> ControlSettings:
    args = build_parser().parse_args(["serve", str(tmp_path), *argv])
    return ControlSettings.from_deployment(settings_from(args))


def test_what_each_mode_serves_at_start(tmp_path: Path) -> None:
    for folder in ("add/1", "add/2", "digits/1"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder).parent.joinpath("servable_config.py").write_text("")
    assert settings(tmp_path).initial() == {"add": [2], "digits": [1]}
    assert settings(tmp_path, "--version-policy", "all").initial() == {"add": [1, 2], "digits": [1]}
    assert settings(tmp_path, "--servable", "add:1").initial() == {"add": [1]}
    explicit = settings(tmp_path, "--model-control", "explicit", "--load-model", "digits")
    assert explicit.mode is ControlMode.EXPLICIT
    assert explicit.initial() == {"digits": [1]}
    assert settings(tmp_path, "--model-control", "explicit").initial() == {}
    with pytest.raises(ValueError, match="no servable nope in"):
        settings(tmp_path, "--model-control", "explicit", "--load-model", "nope").initial()
