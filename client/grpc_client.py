"""`Client`: MindSpore Serving's Python gRPC client, for msq (or MindSpore Serving) servers.

Same constructor, `infer` and `infer_async(...).result()`, same instance and result
conventions (see `msq.client.values`): a list with one dict per instance, `{"error": msg}` for
a failed instance, or one `{"error": msg}` dict when the whole request failed — transport
failures included (``"Grpc Error, (14, 'unavailable'): ..."``), never an exception from a call.
Bad arguments raise at once: `ValueError` for the constructor's, `InstanceError` for instances
that are not dicts or hold unsupported values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from msq.client.values import fill_instance, read_instance
from msq.proto import ms_service_pb2 as pb
from msq.proto import ms_service_pb2_grpc as pb_grpc
from msq.proto.codec import CodecError

log = logging.getLogger(__name__)

#: The largest request or reply the client sends or accepts (the server's maximum).
MAX_MESSAGE_BYTES = 512 * 1024 * 1024

Instances: TypeAlias = Mapping[str, object] | Sequence[Mapping[str, object]]
#: One instance's outputs by name (NumPy arrays, `str`, `bytes`), or ``{"error": message}``.
Result: TypeAlias = dict[str, Any]
#: One result per instance, or ``{"error": message}`` when the whole request failed.
Results: TypeAlias = list[Result] | dict[str, str]


class InstanceError(TypeError, RuntimeError):
    """An instance that cannot be sent (a `RuntimeError`, as MindSpore Serving's client raised)."""


@dataclass(frozen=True, slots=True)
class SSLConfig:
    """TLS for the client: PEM file paths of the client certificate chain and private key (for
    servers that verify clients), and of the CA that signed the server's certificate (None:
    the system's roots)."""

    certificate: str | Path | None = None
    private_key: str | Path | None = None
    custom_ca: str | Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """The grpcio channel credentials."""
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("SSLConfig: certificate and private_key go together")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.custom_ca),
            private_key=_read(self.private_key),
            certificate_chain=_read(self.certificate),
        )


def _read(path: str | Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


class Client:
    """Calls one method of one servable: ``Client("127.0.0.1:5500", "add", "add_common")``.

    `version_number` 0 means the newest running version; `timeout` (seconds, None: none) is
    the deadline of every call unless the call gives its own.
    """

    def __init__(
        self,
        address: str,
        servable_name: str,
        method_name: str,
        version_number: int = 0,
        ssl_config: SSLConfig | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        for name, text in (
            ("address", address),
            ("servable_name", servable_name),
            ("method_name", method_name),
        ):
            if not isinstance(text, str) or not text:
                raise ValueError(f"{name} must be a non-empty str, not {text!r}")
        if isinstance(version_number, bool) or not isinstance(version_number, int):
            raise ValueError(f"version_number must be an int, not {version_number!r}")
        if version_number < 0:
            raise ValueError(f"version_number must be >= 0, not {version_number}")
        self.address = address
        self.servable_name = servable_name
        self.method_name = method_name
        self.version_number = version_number
        self.timeout = timeout
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        if ssl_config is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            self._channel = grpc.secure_channel(address, ssl_config.credentials(), options=options)
        self._predict = pb_grpc.MSServiceStub(self._channel).Predict  # type: ignore[no-untyped-call]

    def infer(self, instances: Instances, *, timeout: float | None = None) -> Results:
        """Run the method on one instance (a dict) or several (a list of dicts)."""
        request = self._request(instances)
        try:
            reply = self._predict(request, timeout=self._timeout(timeout))
        except grpc.RpcError as exc:
            return rpc_error(exc)
        return parse_reply(reply)

    def infer_async(self, instances: Instances, *, timeout: float | None = None) -> AsyncResult:
        """Start `infer` without waiting; `.result()` of the answer waits for its results."""
        request = self._request(instances)
        return AsyncResult(self._predict.future(request, timeout=self._timeout(timeout)))

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _timeout(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    def _request(self, instances: Instances) -> pb.PredictRequest:
        request = pb.PredictRequest()
        request.servable_spec.name = self.servable_name
        request.servable_spec.method_name = self.method_name
        request.servable_spec.version_number = self.version_number
        listed = [instances] if isinstance(instances, Mapping) else instances
        for index, values in enumerate(listed):
            if not isinstance(values, Mapping):
                raise InstanceError(f"instance {index} must be a dict, not {type(values).__name__}")
            try:
                fill_instance(request.instances.add(), dict(values))
            except TypeError as exc:
                raise InstanceError(f"instance {index}: {exc}") from None
        return request


class AsyncResult:
    """The pending answer of `Client.infer_async`."""

    def __init__(self, future: Any) -> None:
        self._future = future

    def result(self) -> Results:
        """Wait for the results (same form as `Client.infer`)."""
        try:
            reply = self._future.result()
        except grpc.RpcError as exc:
            return rpc_error(exc)
        return parse_reply(reply)


def rpc_error(exc: grpc.RpcError) -> dict[str, str]:
    """A failed call as MindSpore Serving's client reported it."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    log.warning("gRPC call failed: %s %s", code.name, details)
    return {"error": f"Grpc Error, {code.value}: {details}"}


def parse_reply(reply: pb.PredictReply) -> Results:
    """The results of a `PredictReply` (MindSpore Serving's error conventions)."""
    errors = reply.error_msg
    if len(errors) == 1:
        return {"error": _text(errors[0].error_msg)}
    if len(errors) not in (0, len(reply.instances)):
        return {
            "error": f"malformed reply: {len(errors)} errors for {len(reply.instances)} instances"
        }
    results: list[Result] = []
    for index, instance in enumerate(reply.instances):
        if errors and errors[index].error_code != 0:
            results.append({"error": _text(errors[index].error_msg)})
            continue
        try:
            results.append(read_instance(instance))
        except CodecError as exc:
            results.append({"error": f"malformed reply: {exc}"})
    return results


def _text(message: bytes) -> str:
    return message.decode("utf-8", errors="replace")
