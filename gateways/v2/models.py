"""V2 model naming and resolution against the servables the broker reports.

A V2 model is one method of one servable, named ``{servable}.{method}``. The bare
``{servable}`` names its method when the servable has exactly one. A V2 version string is a
servable version: ``""`` or ``"0"`` means the newest running version.

A method whose `BatchPolicy.max_size` is above 1 *batches*: its V2 shapes carry a leading batch
dimension (-1 in metadata, ``max_batch_size`` in the config, like Triton), and an infer
request's dim 0 counts its msq instances (the rows of the `Columns` it travels as, see
`msq.gateways.v2.tensors`). A method that does not batch takes exactly one instance per request,
shapes as is.
"""

from __future__ import annotations

from dataclasses import dataclass

from msq.gateways.core.errors import GatewayError
from msq.proto.errors import ErrorKind
from msq.proto.messages import MethodSignature, Status, TensorSpec


@dataclass(frozen=True, slots=True)
class V2Model:
    """A V2 model resolved against the running servables."""

    servable: str
    version: int  # the version a request runs on (the newest unless one was asked for)
    versions: tuple[int, ...]  # every running version that has the method, ascending
    method: MethodSignature
    workers: int

    @property
    def name(self) -> str:
        """The canonical V2 name, ``{servable}.{method}``."""
        return model_name(self.servable, self.method.name)

    @property
    def max_batch_size(self) -> int:
        """Triton's max_batch_size: the method's largest job, or 0 when it does not batch."""
        size = self.method.batching.max_size
        return size if size > 1 else 0

    def shape(self, spec: TensorSpec) -> list[int]:
        """A tensor's V2 shape: -1 for variable dims (and unknown rank), batch dim first."""
        dims = [-1] if spec.shape is None else list(spec.shape)
        return [-1, *dims] if self.max_batch_size else dims


def model_name(servable: str, method: str) -> str:
    """The V2 name of a servable method."""
    return f"{servable}.{method}"


def parse_version(version: str) -> int:
    """A V2 version string as a servable version (``""`` and ``"0"``: the newest)."""
    if not version:
        return 0
    if not version.isdecimal():
        raise GatewayError(ErrorKind.INVALID_INPUT, f"model version {version!r} is not an integer")
    return int(version)


def resolve(status: Status, name: str, version: str = "") -> V2Model:
    """Find the model `name` (at `version`) among the servables of `status`."""
    wanted = parse_version(version)
    by_servable: dict[str, list[tuple[int, MethodSignature, int]]] = {}
    for info in status.servables:
        for method in info.methods:
            by_servable.setdefault(info.servable, []).append((info.version, method, info.workers))
    entries = by_servable.get(name)
    if entries is not None:
        methods = sorted({method.name for _, method, _ in entries})
        if len(methods) != 1:
            choices = ", ".join(model_name(name, method) for method in methods)
            raise GatewayError(
                ErrorKind.NOT_FOUND,
                f"servable {name!r} has several methods: name the model one of {choices}",
            )
        servable, method_name = name, methods[0]
    else:
        servable, _, method_name = name.rpartition(".")
        entries = by_servable.get(servable)
        if not servable or entries is None:
            raise GatewayError(ErrorKind.NOT_FOUND, f"model {name!r} is not available")
    matches = sorted(
        ((ver, method, workers) for ver, method, workers in entries if method.name == method_name),
        key=lambda entry: entry[0],
    )
    if not matches:
        raise GatewayError(ErrorKind.NOT_FOUND, f"model {name!r}: method is not available")
    chosen = [entry for entry in matches if wanted in (0, entry[0])]
    if not chosen:
        raise GatewayError(ErrorKind.NOT_FOUND, f"model {name!r} version {wanted} is not available")
    ver, method, workers = chosen[-1]
    return V2Model(servable, ver, tuple(entry[0] for entry in matches), method, workers)
