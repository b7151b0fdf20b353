"""The REST gateway's OpenAPI 3 document, served at `GET /openapi.json`.

It covers every route: MindSpore Serving's predict routes, the Open Inference Protocol (V2)
routes, `/metrics` and this document. V2 infer bodies with the binary tensor extension are
documented as `application/octet-stream` (tritonclient sends no Content-Type at all).
"""

from __future__ import annotations

import json
from typing import Any

import falcon
import falcon.asgi

import msq
from msq.gateways.core.deadline import TIMEOUT_HEADER
from msq.gateways.rest.http import App, answer_bytes
from msq.gateways.rest.v2_codec import HEADER_LENGTH

_JSON = "application/json"
_OBJECT: dict[str, Any] = {"type": "object"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {_JSON: {"schema": schema}}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = _json_content(schema)
    return answer


def _path_parameter(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if pattern is not None:
        schema["pattern"] = pattern
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


_TIMEOUT = {
    "name": TIMEOUT_HEADER,
    "in": "header",
    "required": False,
    "description": "Timeout of the request in milliseconds; on V2 the smaller of it and the "
    "`timeout` parameter wins (default: the gateway's, 60 s).",
    "schema": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
}
_SERVABLE = _path_parameter("servable", "Servable name")
_METHOD = _path_parameter("method", "Method of the servable")
_MS_VERSION = _path_parameter("version", "Servable version (0: the newest)", "^[0-9]+$")
_MODEL = _path_parameter("model", "`{servable}.{method}`, or `{servable}` with one method")
_V2_VERSION = _path_parameter("version", "Servable version (empty or 0: the newest)")

_MS_ERRORS = "MindSpore Serving error (only with --http-status-codes; else HTTP 200)"
_V2_ERRORS = {
    "400": _answer("Bad input", _ref("V2Error")),
    "404": _answer("Unknown model or version", _ref("V2Error")),
    "503": _answer("Overloaded, or no worker serves the model (see Retry-After)", _ref("V2Error")),
}


def _ms_predict(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "post": {
            "summary": "Run a servable method (MindSpore Serving REST)",
            "tags": ["MindSpore Serving"],
            "parameters": [*parameters, _TIMEOUT],
            "requestBody": {"required": True, "content": _json_content(_ref("MSRequest"))},
            "responses": {
                "200": _answer("Results, or errors in `error_msg`", _ref("MSReply")),
                **{
                    code: _answer(_MS_ERRORS, _ref("MSError"))
                    for code in ("400", "404", "413", "415", "503", "504")
                },
            },
        }
    }


def _v2_get(summary: str, answer: str, schema: str, *, errors: bool = True) -> dict[str, Any]:
    responses = {"200": _answer(answer, _ref(schema))}
    if errors:
        responses.update(_V2_ERRORS)
    return {
        "get": {"summary": summary, "tags": ["Open Inference Protocol"], "responses": responses}
    }


def _v2_infer() -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "post": {
            "summary": "Run inference (JSON tensors, or the binary tensor extension)",
            "tags": ["Open Inference Protocol"],
            "parameters": [
                _TIMEOUT,
                {
                    "name": HEADER_LENGTH,
                    "in": "header",
                    "required": False,
                    "description": "Bytes of JSON before the binary tensors",
                    "schema": {"type": "integer", "minimum": 0},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    **_json_content(_ref("V2InferRequest")),
                    "application/octet-stream": binary,
                },
            },
            "responses": {
                "200": {
                    "description": "Outputs (binary ones follow the JSON header)",
                    "content": {
                        **_json_content(_ref("V2InferResponse")),
                        "application/octet-stream": binary,
                    },
                },
                **_V2_ERRORS,
                "413": _answer("Body too large", _ref("V2Error")),
                "415": _answer("Content-Encoding other than gzip or deflate", _ref("V2Error")),
                "504": _answer("The deadline passed", _ref("V2Error")),
            },
        }
    }


def _model_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix, parameters in (
        ("/v2/models/{model}", [_MODEL]),
        ("/v2/models/{model}/versions/{version}", [_MODEL, _V2_VERSION]),
    ):
        operations = {
            "": _v2_get("Model metadata", "Model metadata", "V2ModelMetadata"),
            "/ready": _v2_get("Model readiness", "The model is ready", "V2Ready"),
            "/config": _v2_get("Model configuration (Triton)", "Configuration", "V2Object"),
            "/stats": _v2_get("Model statistics (Triton)", "Statistics", "V2Statistics"),
            "/infer": _v2_infer(),
        }
        for suffix, item in operations.items():
            paths[prefix + suffix] = {"parameters": parameters, **item}
    return paths


def _repository_paths() -> dict[str, Any]:
    """The model repository extension (Triton's): index, load, unload."""
    tags = ["Open Inference Protocol: model repository"]
    servable = _path_parameter("model", "Servable name")
    done = {"description": "Done (empty body)"}
    errors = {
        "400": _answer("Bad options, or not in explicit model control", _ref("V2Error")),
        "404": _answer("No such servable, or no version matches its policy", _ref("V2Error")),
        "503": _answer("The servable's workers failed to start", _ref("V2Error")),
    }

    def change(summary: str) -> dict[str, Any]:
        return {
            "parameters": [servable],
            "post": {
                "summary": summary,
                "tags": tags,
                "requestBody": {"content": _json_content(_ref("V2RepositoryChange"))},
                "responses": {"200": done, **errors},
            },
        }

    return {
        "/v2/repository/index": {
            "post": {
                "summary": "Every servable version and its state",
                "tags": tags,
                "requestBody": {"content": _json_content(_ref("V2RepositoryIndexRequest"))},
                "responses": {
                    "200": _answer("The index", _ref("V2RepositoryIndex")),
                    "400": _answer("Bad options", _ref("V2Error")),
                },
            }
        },
        "/v2/repository/models/{model}/load": change(
            "Load a servable (explicit model control); answered when its workers are ready"
        ),
        "/v2/repository/models/{model}/unload": change(
            "Unload a servable (explicit model control); answered when its workers drained"
        ),
    }


def _tensor_schema(data: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "parameters": _OBJECT,
    }
    if data:
        properties["data"] = {"type": "array", "items": {}}
    return {"type": "object", "required": ["name", "datatype", "shape"], "properties": properties}


_SCHEMAS: dict[str, Any] = {
    "MSRequest": {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {
                "description": "One instance, or a list; each maps input names to values: "
                "JSON scalars, nested arrays, or {b64, type, shape} objects",
                "oneOf": [_OBJECT, {"type": "array", "items": _OBJECT}],
            }
        },
    },
    "MSReply": {
        "type": "object",
        "properties": {
            "instances": {"type": "array", "items": _OBJECT},
            "error_msg": {"type": "string"},
        },
    },
    "MSError": {
        "type": "object",
        "required": ["error_msg"],
        "properties": {"error_msg": {"type": "string"}},
    },
    "V2Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "V2Object": _OBJECT,
    "V2Live": {"type": "object", "properties": {"live": {"type": "boolean"}}},
    "V2Ready": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _tensor_schema(False)},
            "outputs": {"type": "array", "items": _tensor_schema(False)},
        },
    },
    "V2Statistics": {
        "type": "object",
        "properties": {"model_stats": {"type": "array", "items": _OBJECT}},
    },
    "V2InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": _OBJECT,
            "inputs": {"type": "array", "items": _tensor_schema(True)},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": _OBJECT},
                },
            },
        },
    },
    "V2RepositoryIndexRequest": {
        "type": "object",
        "properties": {"ready": {"type": "boolean", "description": "Only READY versions"}},
    },
    "V2RepositoryIndex": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"type": "string", "enum": ["READY", "LOADING", "UNAVAILABLE"]},
                "reason": {"type": "string"},
            },
        },
    },
    "V2RepositoryChange": {
        "type": "object",
        "properties": {"parameters": _OBJECT},
    },
    "V2InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _tensor_schema(True)},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of every REST route."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "msq REST gateway",
            "version": msq.__version__,
            "description": "MindSpore Serving REST and the Open Inference Protocol (V2) REST API.",
        },
        "paths": {
            "/model/{servable}:{method}": _ms_predict([_SERVABLE, _METHOD]),
            "/model/{servable}/version/{version}:{method}": _ms_predict(
                [_SERVABLE, _MS_VERSION, _METHOD]
            ),
            "/v2": _v2_get("Server metadata", "Server metadata", "V2ServerMetadata", errors=False),
            "/v2/health/live": _v2_get("Liveness", "The server is live", "V2Live", errors=False),
            "/v2/health/ready": {
                "get": {
                    "summary": "Readiness",
                    "tags": ["Open Inference Protocol"],
                    "responses": {
                        "200": _answer("Ready", _ref("V2Ready")),
                        "503": _answer("Not ready", _ref("V2Error")),
                    },
                }
            },
            "/v2/models/stats": _v2_get("Statistics of every model", "Statistics", "V2Statistics"),
            **_model_paths(),
            **_repository_paths(),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _answer("OpenAPI 3 document", _OBJECT)},
                }
            },
        },
        "components": {"schemas": _SCHEMAS},
    }


class OpenApiResource:
    """Answers `GET /openapi.json`."""

    def __init__(self) -> None:
        self._body = json.dumps(openapi_document(), separators=(",", ":")).encode("utf-8")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        answer_bytes(resp, 200, self._body)


def add_routes(app: App) -> None:
    """Mount `GET /openapi.json` on `app`."""
    app.add_route("/openapi.json", OpenApiResource())
