"""Unit tests of V2 model naming, versions and resolution (no sockets)."""

from __future__ import annotations

import grpc
import pytest

from msq.gateways.core.errors import GatewayError
from msq.gateways.v2.models import parse_version, resolve
from msq.proto.errors import ErrorKind
from tests.gateways.v2.statuses import ADD_CAST, make_status


def test_version_strings() -> None:
    assert parse_version("") == 0
    assert parse_version("0") == 0
    assert parse_version("12") == 12
    for bad in ("-1", "1.0", "v1", " 1"):
        with pytest.raises(GatewayError) as info:
            parse_version(bad)
        assert info.value.kind is ErrorKind.INVALID_INPUT


def test_resolve_servable_dot_method_and_bare_single_method_servable() -> None:
    status = make_status()
    model = resolve(status, "add.add_cast")
    assert (model.servable, model.method, model.version, model.versions) == (
        "add",
        ADD_CAST,
        1,
        (1,),
    )
    assert model.name == "add.add_cast"
    bare = resolve(status, "digits")
    assert (bare.name, bare.version, bare.versions, bare.workers) == (
        "digits.classify",
        2,
        (1, 2),
        2,
    )
    assert resolve(status, "digits.classify", "1").workers == 0
    assert resolve(status, "digits.classify", "0").version == 2


@pytest.mark.parametrize(
    ("name", "version", "needle"),
    [
        ("add", "", "add.add_cast, add.add_common"),
        ("nope", "", "'nope' is not available"),
        ("nope.add_common", "", "is not available"),
        ("add.nope", "", "method is not available"),
        ("digits.classify", "3", "version 3 is not available"),
        (".add_common", "", "is not available"),
    ],
)
def test_resolve_unknown_models_are_not_found(name: str, version: str, needle: str) -> None:
    with pytest.raises(GatewayError) as info:
        resolve(make_status(), name, version)
    assert info.value.kind is ErrorKind.NOT_FOUND
    assert needle in info.value.message
    assert info.value.status.grpc_code is grpc.StatusCode.NOT_FOUND
    assert info.value.status.http_status == 404
