"""Broker settings: per-servable batching overrides from the command line and a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from msq.broker.cli import build_parser, settings_from
from msq.broker.settings import BrokerSettings, load_overrides
from msq.proto.batching import BatchingError, BatchPolicy

ANNOUNCED = BatchPolicy(sizes=(1, 2, 4, 8), preferred_size=8, max_queue_delay_ms=2.0,
                        max_queue_size=100)  # fmt: skip


def test_servable_entry_wins_over_star_and_star_over_the_announced_policy(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(
        '[batching."*"]\nmax_queue_delay_ms = 5.0\nmax_queue_size = 50\n'
        "[batching.digits]\npreferred_size = 4\nmax_queue_delay_ms = 0.5\n"
    )
    settings = BrokerSettings(overrides=load_overrides(config))
    digits = settings.policy_for("digits", ANNOUNCED)
    assert digits == BatchPolicy((1, 2, 4, 8), 4, 0.5, 50)
    assert settings.policy_for("add", ANNOUNCED) == BatchPolicy((1, 2, 4, 8), 8, 5.0, 50)


def test_command_line_values_apply_to_every_servable_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text('[batching.add]\nmax_queue_size = 7\n[batching."*"]\npreferred_size = 2\n')
    args = build_parser().parse_args(
        ["--config", str(config), "--max-queue-delay-ms", "0", "--preferred-batch-size", "4",
         "--default-timeout", "9"]
    )  # fmt: skip
    settings = settings_from(args)
    assert settings.default_timeout_s == 9.0
    assert settings.policy_for("add", ANNOUNCED) == BatchPolicy((1, 2, 4, 8), 4, 0.0, 7)
    file_only = settings_from(build_parser().parse_args(["--config", str(config)]))
    assert file_only.policy_for("x", ANNOUNCED) == BatchPolicy((1, 2, 4, 8), 2, 2.0, 100)
    # a flag keeps the file's other "*" settings
    args = build_parser().parse_args(["--config", str(config), "--max-queue-size", "9"])
    assert settings_from(args).policy_for("x", ANNOUNCED) == BatchPolicy((1, 2, 4, 8), 2, 2.0, 9)


def test_invalid_command_line_values_are_refused_clearly() -> None:
    args = build_parser().parse_args(["--max-queue-size", "0"])
    with pytest.raises(BatchingError, match=r"^max_queue_size must be an int >= 1, not 0$"):
        settings_from(args)


def test_preferred_size_is_capped_by_the_largest_batch() -> None:
    settings = BrokerSettings(overrides={"*": {"preferred_size": 64}})
    assert settings.policy_for("add", ANNOUNCED).preferred_size == 8


def test_overrides_given_in_code_are_checked_too() -> None:
    with pytest.raises(ValueError, match="batching of 'add': preferred_size must be an int >= 1"):
        BrokerSettings(overrides={"add": {"preferred_size": 0}})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "[batching.add]\nmax_queue_size = 0\n",
            r"\[batching.add\]: max_queue_size must be an int >= 1, not 0$",
        ),
        ("[batching.add]\nmax_queue_size = 2.5\n", "max_queue_size must be an int >= 1, not 2.5"),
        ("[batching.add]\nmax_queue_delay_ms = -1\n", "max_queue_delay_ms must be a number >= 0"),
        (
            "[batching.add]\npreferred_batch_size = 3\n",
            r"unknown batching setting 'preferred_batch_size' \(known: preferred_size, ",
        ),
        ("[batching.add]\nwindow = 3\n", "unknown batching setting 'window'"),
        ("batching = 3\n", "must be a table"),
    ],
)
def test_invalid_overrides_are_refused_clearly(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=problem):
        load_overrides(config)
