"""The OpenAPI document: it validates, covers every route, and a bounded schemathesis run
against the live gateway finds no server error."""

from __future__ import annotations

import json
from typing import Any

import falcon.inspect
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate

from msq.gateways.rest.app import create_app
from msq.gateways.rest.openapi import openapi_document
from msq.gateways.rest.state import RestSettings
from tests.gateways.rest_stack import RestStack, call


def test_the_document_is_valid_openapi() -> None:
    validate(openapi_document())  # type: ignore[arg-type]


def test_the_document_covers_every_route_and_method() -> None:
    app = create_app(RestSettings())
    served = {
        (route.path, method.method.lower())
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }
    documented = {
        (path, method)
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert served == documented


def test_the_live_document_is_the_same(rest_stack: RestStack) -> None:
    status, headers, body = call(rest_stack.plain(), "GET", "/openapi.json")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(body) == openapi_document()


@pytest.fixture(scope="module")
def live_schema(rest_stack: RestStack) -> Any:
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{rest_stack.plain_port}/openapi.json")


schema = schemathesis.pytest.from_fixture("live_schema")


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_generated_requests_get_no_server_error(case: Any) -> None:
    response = case.call(timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code != 200:
        assert set(response.json()) <= {"error", "error_msg"}
