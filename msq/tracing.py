"""Optional OpenTelemetry tracing of requests (`pip install msq[tracing]`), off by default.

On with a program's `--tracing` option or `MSQ_TRACING=1`; the exporter follows
`OTEL_TRACES_EXPORTER`: `otlp` (the default; needs `opentelemetry-exporter-otlp`, configured by
the standard `OTEL_EXPORTER_OTLP_*` variables), `console` or `none`. When off, nothing of
OpenTelemetry is imported and every function here returns at its first test.

Spans of one request, all in the trace of the client's W3C `traceparent` when it sent one:
`msq.gateway.receive` (the gateway, from the request to its answer) and, under it,
`msq.broker.queue` (from the broker queueing the request's instances to the worker receiving
them), `msq.worker.preprocess` / `msq.worker.model` / `msq.worker.postprocess` (each stage of
the method: Python stages before the first model, model stages, Python stages after) and
`msq.gateway.reply` (building the answer). The gateway's context travels in `Request.traceparent`
and, per traced request, in `Job.traces`; the worker records the queue span from the time the
broker says the instances waited (`JobTrace.queued_ms`), so the broker itself exports nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

ENV = "MSQ_TRACING"
#: The W3C trace context header (HTTP) / metadata key (gRPC).
TRACEPARENT = "traceparent"

_tracer: Any = None
_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()
#: Stage timings of the job running in this thread: (span name, attributes, start, end ns).
_stages: contextvars.ContextVar[list[tuple[str, dict[str, Any], int, int]] | None] = (
    contextvars.ContextVar("msq_stage_spans", default=None)
)


def enabled() -> bool:
    """Whether this process traces."""
    return _tracer is not None


def setup_tracing(program: str, on: bool = False, exporter: Any = None) -> None:
    """Trace when `on` or `MSQ_TRACING` is 1/true/yes/on: spans of service `program`, sent to
    `exporter` (tests) or the one `OTEL_TRACES_EXPORTER` names. Exit with a message when the
    tracing extra is not installed or the exporter is unknown."""
    global _tracer  # noqa: PLW0603 (one tracer per process)
    if not (on or os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")):
        return
    try:
        from opentelemetry import trace  # noqa: PLC0415 (only when tracing is on)
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider, export  # noqa: PLC0415
    except ImportError:
        raise SystemExit(f"{program}: tracing needs: pip install 'msq[tracing]'") from None
    provider = TracerProvider(resource=Resource.create({"service.name": program}))
    if exporter is not None:
        provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    else:
        try:
            configured = _configured_exporter(export)
        except RuntimeError as exc:
            raise SystemExit(f"{program}: {exc}") from None
        if configured is not None:
            provider.add_span_processor(export.BatchSpanProcessor(configured))
    _tracer = provider.get_tracer("msq")
    trace.set_tracer_provider(provider)


def stop_tracing() -> None:
    """Stop tracing in this process (what `setup_tracing` started; tests)."""
    global _tracer  # noqa: PLW0603
    _tracer = None


def _configured_exporter(export: Any) -> Any:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if name == "none":
        return None
    if name == "console":
        return export.ConsoleSpanExporter()
    if name != "otlp":
        raise RuntimeError(f"OTEL_TRACES_EXPORTER {name!r}: msq knows otlp, console and none")
    try:
        otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    except ImportError:
        raise RuntimeError(
            "OTEL_TRACES_EXPORTER=otlp needs: pip install opentelemetry-exporter-otlp-proto-http"
        ) from None
    return otlp.OTLPSpanExporter()


def _parent(traceparent: str | None) -> Any:
    """The OpenTelemetry context of a W3C `traceparent` (None: a new trace)."""
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
        TraceContextTextMapPropagator,
    )

    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent})


def server_span(
    name: str, traceparent: str | None, request_id: str
) -> contextlib.AbstractContextManager[Any]:
    """The span of a request a gateway received (current in the block), child of the client's
    `traceparent` when given; a no-op when tracing is off."""
    if _tracer is None:
        return _NOTHING
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    return _tracer.start_as_current_span(  # type: ignore[no-any-return]
        name,
        context=_parent(traceparent),
        kind=SpanKind.SERVER,
        attributes={"msq.request_id": request_id},
    )


def span(name: str) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one for the block; a no-op when tracing is off."""
    if _tracer is None:
        return _NOTHING
    return _tracer.start_as_current_span(name)  # type: ignore[no-any-return]


def start_server_span(name: str, traceparent: str | None, request_id: str) -> Any:
    """`server_span` entered by hand (Falcon's middleware): pass the result to
    `end_server_span`; None when tracing is off."""
    if _tracer is None:
        return None
    manager = server_span(name, traceparent, request_id)
    manager.__enter__()
    return manager


def end_server_span(started: Any) -> None:
    """End what `start_server_span` started."""
    if started is not None:
        started.__exit__(None, None, None)


def current_traceparent() -> str:
    """The W3C `traceparent` of the current span ("" when tracing is off or none is current)."""
    if _tracer is None:
        return ""
    from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
        TraceContextTextMapPropagator,
    )

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get(TRACEPARENT, "")


@contextlib.contextmanager
def job_spans(
    job_id: int, instances: int, traces: Sequence[tuple[str, float]], arrived_ns: int
) -> Iterator[None]:
    """Record the block's stages (`stage`) and, when it ends, export for each traced request
    (`traces`: its traceparent, how long its instances waited in the broker in ms) its queue
    span, ending when the job `arrived_ns` (wall clock), and one span per stage."""
    if _tracer is None or not traces:
        yield
        return
    stages: list[tuple[str, dict[str, Any], int, int]] = []
    token = _stages.set(stages)
    try:
        yield
    finally:
        _stages.reset(token)
        common = {"msq.job_id": job_id, "msq.instances": instances}
        for traceparent, queued_ms in traces:
            parent = _parent(traceparent)
            queued = _tracer.start_span(
                "msq.broker.queue",
                context=parent,
                start_time=arrived_ns - round(queued_ms * 1e6),
                attributes={**common, "msq.queued_ms": queued_ms},
            )
            queued.end(end_time=arrived_ns)
            for name, attributes, start_ns, end_ns in stages:
                stage = _tracer.start_span(
                    name, context=parent, start_time=start_ns, attributes={**common, **attributes}
                )
                stage.end(end_time=end_ns)


def stage_started() -> int:
    """The time a stage starts, for `stage_done` (0 when no job is traced)."""
    return 0 if _stages.get() is None else time.time_ns()


def stage_done(started_ns: int, is_model: bool, before_model: bool, label: str) -> None:
    """Record a stage of the traced job running in this thread (nothing when none is)."""
    stages = _stages.get()
    if stages is None or not started_ns:
        return
    role = "model" if is_model else "preprocess" if before_model else "postprocess"
    attributes = {"msq.stage": label}
    stages.append((f"msq.worker.{role}", attributes, started_ns, time.time_ns()))
