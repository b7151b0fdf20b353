"""Poll model control under load: a version folder added is served without a restart, the
one it replaces drains and stops, and removing the new folder brings the old version back, all
without a failed request; loads and unloads are refused outside explicit mode."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from msq.broker.control import NOT_EXPLICIT
from tests.integration.launching import (
    Serving,
    add_inputs,
    add_version,
    copy_servable,
    serve,
    wait_for,
)


class Load:
    """Clients sending `add.add_common` (version 0) back to back through the gRPC gateway,
    counting the answers per version and keeping every failure."""

    def __init__(self, address: str, clients: int = 3) -> None:
        self.address = address
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self, index: int) -> None:
        client = triton_grpc.InferenceServerClient(self.address)
        value = float(index)
        while not self._stop.is_set():
            try:
                result = client.infer("add.add_common", add_inputs(value), client_timeout=60)
                y = result.as_numpy("y")
                ok = y is not None and y.tolist() == [[[value + 1] * 2] * 2]
                version = result.get_response().model_version
                with self._lock:
                    if ok:
                        self.versions[version] += 1
                    else:
                        self.failures.append(f"wrong result {y!r} from version {version}")
            except InferenceServerException as exc:
                with self._lock:
                    self.failures.append(str(exc))
        client.close()

    def answered(self, version: str) -> int:
        """Requests version `version` answered so far; AssertionError once one failed."""
        with self._lock:
            assert self.failures == [], self.failures
            return self.versions[version]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


@pytest.fixture(scope="module")
def polling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serving, Path]]:
    servable_dir = tmp_path_factory.mktemp("repository")
    copy_servable(servable_dir, "add")
    serving = serve(servable_dir, "--model-control", "poll", "--repository-poll-secs", "0.3")
    try:
        yield serving, servable_dir
    finally:
        serving.stop()


def test_a_new_version_takes_over_and_the_old_one_drains_without_a_failed_request(
    polling: tuple[Serving, Path],
) -> None:
    serving, servable_dir = polling
    assert set(serving.workers()) == {"add:1"}
    load = Load(serving.grpc)
    try:
        wait_for(lambda: load.answered("1") >= 20)
        add_version(servable_dir / "add", 2)
        wait_for(lambda: load.answered("2") >= 20)
        wait_for(lambda: set(serving.workers()) == {"add:2"})  # version 1 drained and left
        answered_before = load.answered("1")
        explicit = triton_grpc.InferenceServerClient(serving.grpc)
        result = explicit.infer("add.add_common", add_inputs(5.0), model_version="2")
        assert result.get_response().model_version == "2"
        shutil.rmtree(servable_dir / "add" / "2")
        wait_for(lambda: load.answered("1") >= answered_before + 20)
        wait_for(lambda: set(serving.workers()) == {"add:1"})  # version 2 drained and left
    finally:
        load.stop()
    assert load.failures == []
    assert load.versions["1"] > 0 and load.versions["2"] > 0


def test_load_and_unload_are_refused_outside_explicit_mode(polling: tuple[Serving, Path]) -> None:
    serving, _ = polling
    grpc_client = triton_grpc.InferenceServerClient(serving.grpc)
    http_client = triton_http.InferenceServerClient(serving.rest)
    for call in (
        lambda: grpc_client.load_model("add"),
        lambda: grpc_client.unload_model("add"),
        lambda: http_client.load_model("add"),
        lambda: http_client.unload_model("add"),
    ):
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert refused.value.message() == NOT_EXPLICIT
    # Version 2 of the test before leaves the index once its worker has been reaped.
    wait_for(
        lambda: (
            grpc_client.get_model_repository_index(as_json=True)
            == {"models": [{"name": "add", "version": "1", "state": "READY"}]}
        ),
        timeout_s=30,
    )
