"""Explicit model control through tritonclient: the repository index over gRPC and HTTP, a
servable loaded and unloaded while serving, and clear errors for what cannot be loaded."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.integration.launching import Serving, add_inputs, copy_servable, serve, wait_for


@pytest.fixture(scope="module")
def explicit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    servable_dir = tmp_path_factory.mktemp("repository")
    copy_servable(servable_dir, "add")
    copy_servable(servable_dir, "twice", versions=(1, 2))
    copy_servable(servable_dir, "empty", versions=())
    copy_servable(servable_dir, "broken")
    (servable_dir / "broken" / "1" / "tensor_add.mindir").unlink()
    serving = serve(servable_dir, "--model-control", "explicit", "--load-model", "add")
    try:
        yield serving
    finally:
        serving.stop()


def index(serving: Serving) -> list[dict[str, str]]:
    """The index over gRPC, checked to be the same over HTTP."""
    over_grpc = triton_grpc.InferenceServerClient(serving.grpc).get_model_repository_index(
        as_json=True
    )
    over_http = triton_http.InferenceServerClient(serving.rest).get_model_repository_index()
    models: list[dict[str, str]] = over_grpc.get("models", [])
    assert over_http == models
    return models


def test_only_the_named_servable_starts_and_the_index_lists_every_servable(
    explicit: Serving,
) -> None:
    assert set(explicit.workers()) == {"add:1"}
    assert index(explicit) == [
        {"name": "add", "version": "1", "state": "READY"},
        {"name": "broken", "state": "UNAVAILABLE", "reason": "unloaded"},
        {"name": "empty", "state": "UNAVAILABLE", "reason": "unloaded"},
        {"name": "twice", "state": "UNAVAILABLE", "reason": "unloaded"},
    ]
    url = f"http://{explicit.rest}/v2/repository/index"
    ready_only = urllib.request.Request(url, data=b'{"ready": true}', method="POST")
    with urllib.request.urlopen(ready_only, timeout=30) as response:
        assert json.load(response) == [{"name": "add", "version": "1", "state": "READY"}]


def test_load_serves_the_newest_version_and_unload_stops_it(explicit: Serving) -> None:
    grpc_client = triton_grpc.InferenceServerClient(explicit.grpc)
    http_client = triton_http.InferenceServerClient(explicit.rest)
    grpc_client.load_model("twice")  # answers once the workers are ready
    assert {"name": "twice", "version": "2", "state": "READY"} in index(explicit)
    result = grpc_client.infer("twice.add_common", add_inputs(2.0))
    assert result.get_response().model_version == "2"
    assert result.as_numpy("y").tolist() == [[[3.0, 3.0], [3.0, 3.0]]]  # type: ignore[union-attr]
    assert set(explicit.workers()) == {"add:1", "twice:2"}
    http_client.unload_model("twice")  # answers once the workers drained and stopped
    assert {"name": "twice", "state": "UNAVAILABLE", "reason": "unloaded"} in index(explicit)
    wait_for(lambda: set(explicit.workers()) == {"add:1"}, timeout_s=30)
    with pytest.raises(InferenceServerException) as gone:
        grpc_client.infer("twice.add_common", add_inputs(2.0))
    assert gone.value.status() == "StatusCode.NOT_FOUND"  # by the broker, or a fresh catalog
    assert gone.value.message() in (
        "servable is not available: 'twice' is not served",
        "model 'twice.add_common' is not available",
    )
    http_client.load_model("twice")
    assert http_client.is_model_ready("twice.add_common")
    grpc_client.unload_model("twice")
    # Another gateway process: it sees the change when its cached catalog expires (1 s).
    wait_for(lambda: not http_client.is_model_ready("twice.add_common"), timeout_s=10)


def test_what_cannot_be_loaded_is_refused_clearly(explicit: Serving) -> None:
    grpc_client = triton_grpc.InferenceServerClient(explicit.grpc)
    http_client = triton_http.InferenceServerClient(explicit.rest)
    with pytest.raises(InferenceServerException) as unknown:
        grpc_client.load_model("nope")
    assert unknown.value.status() == "StatusCode.NOT_FOUND"
    assert unknown.value.message() == (
        "failed to load 'nope': no servable 'nope' in the model repository"
    )
    with pytest.raises(InferenceServerException) as empty:
        http_client.load_model("empty")
    assert empty.value.status() == "404"
    assert empty.value.message() == (
        "failed to load 'empty': no version folder matches its version policy latest:1 (found: [])"
    )
    with pytest.raises(InferenceServerException) as config:
        http_client.load_model("add", config='{"backend": "onnxruntime"}')
    assert config.value.status() == "400"
    assert config.value.message() == "loading with a config or files is not supported"
    assert set(explicit.workers()) == {"add:1"}
    with pytest.raises(InferenceServerException) as broken:
        grpc_client.load_model("broken")
    assert broken.value.status() == "StatusCode.UNAVAILABLE"
    reason = broken.value.message()
    assert reason.startswith("failed to load 'broken': worker broken:1 cpu #1 exited with code 1 ")
    assert "tensor_add.mindir" in reason  # the worker's own start-up error
    assert {"name": "broken", "version": "1", "state": "UNAVAILABLE", "reason": reason} in index(
        explicit
    )
    assert set(explicit.workers()) == {"add:1"}
