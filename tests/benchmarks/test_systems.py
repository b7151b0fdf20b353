"""A peer whose framework is not installed is skipped with a message saying how to install it
(no processes start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msq.benchmarks import systems
from msq.benchmarks.scenarios import SCENARIOS


def test_a_peer_that_is_not_installed_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(systems.PEERS, "absent", ("msq_absent_framework", 'pip install "absent"'))
    with pytest.raises(systems.SystemUnavailableError) as raised:
        systems.start_peer("absent", SCENARIOS["mlp"], tmp_path)
    assert str(raised.value) == 'msq_absent_framework is not installed (pip install "absent")'
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing logged
