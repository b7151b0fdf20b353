"""The request id rule: a client's valid id is kept, anything else gets a new one."""

from __future__ import annotations

import re

import pytest

from msq.gateways.core.request_ids import MAX_LENGTH, new_request_id, request_id, valid


@pytest.mark.parametrize(
    "given",
    ["a", "req-7", "0af7651916cd43dd8448eb211c80319c", "x" * MAX_LENGTH, "!~:/=+@"],
)
def test_printable_ascii_ids_up_to_the_cap_are_kept(given: str) -> None:
    assert valid(given)
    assert request_id(given) == given


@pytest.mark.parametrize(
    "given", [None, "", "x" * (MAX_LENGTH + 1), "has space", "tab\t", "new\nline", "caf\u00e9", 7]
)
def test_other_ids_are_replaced_by_a_new_one(given: object) -> None:
    assert not valid(given)
    assert re.fullmatch(r"[0-9a-f]{32}", request_id(given))


def test_the_first_valid_id_wins() -> None:
    assert request_id(None, "bad id", "body-id") == "body-id"
    assert request_id("header-id", "body-id") == "header-id"


def test_new_ids_are_unique() -> None:
    assert len({new_request_id() for _ in range(1000)}) == 1000
