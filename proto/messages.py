"""Message types of msq's internal protocol (gateway <-> broker <-> worker).

These are plain data; `msq.proto.wire` derives their encoding from these declarations (field
order and types), so a new field needs no change there. `docs/protocol.md` is checked against
them by `tests/proto/test_protocol_doc.py`.
An instance is a mapping of input (or output) names to `WireTensor`s. Requests, jobs and their
answers carry instances as `Columns`: consecutive instances that share names, dtypes and shapes
travel as one stacked tensor per name (`msq.proto.columns` builds, slices and splits them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from msq.proto.batching import BatchPolicy
from msq.proto.codec import WireTensor
from msq.proto.errors import Failure

#: Version of the internal protocol; a peer speaking another version is refused.
PROTOCOL_VERSION = 6

Instance: TypeAlias = dict[str, WireTensor]
InstanceOutcome: TypeAlias = Instance | Failure


@dataclass(frozen=True, slots=True)
class Columns:
    """`count` consecutive instances stacked: each named tensor holds the instances' values along
    a new first dimension of length `count` (an instance's value of shape S has shape
    (count, *S) here). STRING and BYTES values are never stacked: their `Columns` hold one
    instance, shape (1,)."""

    count: int
    tensors: dict[str, WireTensor]


@dataclass(frozen=True, slots=True)
class RowFailure:
    """The instance at `row` (counted from 0 over the whole request or job) failed."""

    row: int
    failure: Failure


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """An input or output of a method: its name, and dtype and per-instance shape when known.

    `dtype` None means any type; `shape` None means any shape, and -1 in a shape is a
    variable dimension.
    """

    name: str
    dtype: str | None = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class MethodSignature:
    """A method a worker serves: its inputs, outputs and batching."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batching: BatchPolicy = field(default_factory=BatchPolicy)


@dataclass(frozen=True, slots=True)
class Ready:
    """Worker -> broker: registration, with everything the worker serves."""

    servable: str
    version: int
    methods: tuple[MethodSignature, ...]
    capacity: int
    device: str = "cpu"
    pid: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Both ways between the broker and each worker or gateway link: the sender is alive.

    The broker's carry its `incarnation` (random per broker process, as in `BrokerInfo`): a
    peer that sees another one knows the broker restarted and its work there is gone. Workers'
    and gateways' heartbeats leave it empty.
    """

    incarnation: str = ""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Broker -> worker: re-register (the broker does not know you); worker -> broker: leaving."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    """Gateway -> broker: run `method` of `servable` on each instance of `columns`, in order.

    `version` 0 means the highest running version. `timeout_ms` is the time the caller waits
    (None: the broker's default). `rid` is the request id the gateway gave the request (the
    client's `X-Request-Id` / V2 `id`, else a generated one) for every log line about it;
    `request_id` only pairs the request with its reply on this link. `traceparent` is the W3C
    trace context of the gateway's span when it traces (see `msq.tracing`), else empty.
    """

    request_id: int
    servable: str
    method: str
    columns: list[Columns]
    version: int = 0
    timeout_ms: float | None = None
    rid: str = ""
    traceparent: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """Broker -> gateway: the outcome of every instance, or `error` for the whole request.

    The instances (rows) in `failures` failed; `columns` hold the outputs of all the others, in
    row order (`msq.proto.columns.Outcomes.rows` pairs them up).
    """

    request_id: int
    version: int = 0
    columns: list[Columns] = field(default_factory=list)
    failures: list[RowFailure] = field(default_factory=list)
    error: Failure | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Gateway -> broker: the caller went away; drop the request's queued instances."""

    request_id: int


@dataclass(frozen=True, slots=True)
class JobTrace:
    """A traced request in a job: its `traceparent`, and how long its first instance in the
    job waited in the broker (ms, until the job was sent)."""

    traceparent: str
    queued_ms: float


@dataclass(frozen=True, slots=True)
class Job:
    """Broker -> worker: run `method` on the instances of `columns` (slices of requests'
    columns; rows are counted over the whole job).

    `timeout_ms` is the time left, when the broker sent the job, until the latest deadline of
    the instances' requests; a worker answers a job it has not started by then as timed out.
    The worker pads each model call to that model's own batch sizes. `rids` are the request
    ids (`Request.rid`) of the requests the instances belong to, each once, in order; `traces`
    one `JobTrace` per such request that came with a `traceparent` (usually none).
    """

    job_id: int
    method: str
    columns: list[Columns]
    timeout_ms: float
    rids: list[str] = field(default_factory=list)
    traces: list[JobTrace] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Result:
    """Worker -> broker: the outcome of every job instance (as in `Reply`: the rows in
    `failures` failed, `columns` hold the others' outputs in row order), the time the method's
    execution took, and the CPU time the worker process used meanwhile (all its threads: the
    model's kernels too)."""

    job_id: int
    columns: list[Columns] = field(default_factory=list)
    failures: list[RowFailure] = field(default_factory=list)
    compute_ms: float = 0.0
    compute_cpu_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """Gateway -> broker: ask for the catalog of servables and the batching statistics."""

    request_id: int


@dataclass(frozen=True, slots=True)
class ServableInfo:
    """One running servable version: its methods and how many workers serve it."""

    servable: str
    version: int
    methods: tuple[MethodSignature, ...]
    workers: int


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """The broker that answered: `incarnation` is random per broker process (another one
    means the broker restarted)."""

    incarnation: str
    pid: int
    uptime_s: float


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A registered worker now: `worker_id` is its ZeroMQ identity in hex, `free` its free
    credits out of `capacity`, `jobs` the jobs it runs, `silent_s` the seconds since the broker
    last heard from it."""

    worker_id: str
    servable: str
    version: int
    device: str
    pid: int
    capacity: int
    free: int
    jobs: int
    silent_s: float


@dataclass(frozen=True, slots=True)
class RouteWindow:
    """A route over the last `seconds` (a minute, or the broker's uptime if shorter): requests
    and instances accepted, instances completed, and the p50 and p99 of the time from an
    instance's queueing to its result in ms (None when none completed)."""

    seconds: float
    requests: int
    instances: int
    completed: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """A served (servable, version, method) now: instances queued, jobs running, workers."""

    servable: str
    version: int
    method: str
    queued: int
    in_flight: int
    workers: int
    window: RouteWindow


@dataclass(frozen=True, slots=True)
class Status:
    """Broker -> gateway: what is served, the statistics (see `msq.broker.stats`), and the
    live view of `msq status`: the broker, its workers and its routes."""

    request_id: int
    servables: list[ServableInfo]
    stats: dict[str, object]
    broker: BrokerInfo | None = None
    workers: list[WorkerInfo] = field(default_factory=list)
    routes: list[RouteInfo] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Drain:
    """Worker -> broker: route nothing new to me, let me finish what I hold (sent on SIGTERM);
    broker -> worker: you hold nothing any more and are unrouted: leave now."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class ControllerReady:
    """Controller -> broker (frontend): I answer the repository commands; `mode` is the
    launcher's model control mode (none, poll, explicit). Sent again every few seconds."""

    mode: str


@dataclass(frozen=True, slots=True)
class RepositoryCommand:
    """Gateway -> broker -> controller: a V2 repository action: "index", "load" or "unload"
    of servable `model` (empty for "index"). The broker renumbers `request_id` on the way."""

    request_id: int
    action: str
    model: str = ""


@dataclass(frozen=True, slots=True)
class RepositoryModel:
    """One servable version in the repository index: state READY, LOADING or UNAVAILABLE
    (`version` empty and `reason` "unloaded" for a servable none of whose versions is loaded)."""

    name: str
    version: str
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RepositoryAnswer:
    """Controller -> broker -> gateway: the index (for "index"), or `error` when the command
    failed (a load or unload succeeded when `error` is None)."""

    request_id: int
    models: list[RepositoryModel] = field(default_factory=list)
    error: Failure | None = None


@dataclass(frozen=True, slots=True)
class AgentJoin:
    """Agent -> worker (distributed servables): rank `rank` of process `pid` joins; `model_file`
    is the file it loads (empty: the one the worker names in `AgentPlan`)."""

    rank: int
    pid: int
    model_file: str = ""


@dataclass(frozen=True, slots=True)
class AgentQuery:
    """Agent -> worker (distributed servables): how many ranks has the servable?"""


@dataclass(frozen=True, slots=True)
class AgentRanks:
    """Worker -> agent: the servable has ranks 0..`rank_size`-1."""

    rank_size: int


@dataclass(frozen=True, slots=True)
class AgentPlan:
    """Worker -> agent: joined; form MindSpore's cluster of `rank_size` ranks with the
    scheduler at `scheduler_host`:`scheduler_port` and load `model_file` (the agent's own when
    it gave one); `generation` names this start of the group."""

    rank_size: int
    scheduler_host: str
    scheduler_port: int
    model_file: str
    generation: int


@dataclass(frozen=True, slots=True)
class AgentRefused:
    """Worker -> agent: not joined (the reason says why); the agent exits."""

    reason: str


@dataclass(frozen=True, slots=True)
class AgentLoaded:
    """Agent -> worker: the rank is in the cluster and its model is loaded (`error` empty), or
    it failed (`error` says why)."""

    rank: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class AgentCall:
    """Worker -> agent: run the model once on these inputs ("0", "1", ... in order)."""

    call_id: int
    inputs: Instance


@dataclass(frozen=True, slots=True)
class AgentOutputs:
    """Agent -> worker: the outputs of call `call_id` ("0", "1", ...; only the last rank sends
    them, the others send none), or `error`."""

    call_id: int
    outputs: Instance
    error: str = ""


Message: TypeAlias = (
    Ready
    | Heartbeat
    | Disconnect
    | Request
    | Reply
    | Cancel
    | Job
    | Result
    | StatusQuery
    | Status
    | Drain
    | ControllerReady
    | RepositoryCommand
    | RepositoryAnswer
    | AgentQuery
    | AgentRanks
    | AgentJoin
    | AgentPlan
    | AgentRefused
    | AgentLoaded
    | AgentCall
    | AgentOutputs
)
