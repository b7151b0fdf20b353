"""The V2 model repository extension (Triton's index, load and unload), for every front-end.

A repository model is a servable (not a `{servable}.{method}` V2 model): loading it starts the
workers of the versions its version policy picks. The commands go through the broker to `msq
serve`'s model controller (`msq.launcher.control`); loads and unloads are allowed only in its
explicit model control mode, as in Triton. Every failure is a `GatewayError`.
"""

from __future__ import annotations

from typing import Any

from msq.gateways.core.errors import GatewayError
from msq.gateways.core.link import BrokerLink
from msq.proto.messages import RepositoryModel

#: How long a load (workers load and warm up their models) or an unload (workers drain) may take.
CHANGE_TIMEOUT_S = 300.0
#: How long an index may take.
INDEX_TIMEOUT_S = 10.0


class Repository:
    """Index, load and unload through one broker link."""

    def __init__(self, link: BrokerLink) -> None:
        self._link = link

    async def index(self, *, ready_only: bool = False) -> list[dict[str, Any]]:
        """Every servable version with its state (only READY ones with `ready_only`), as
        Triton's index entries: name, version, state, reason."""
        answer = await self._link.repository("index", timeout_s=INDEX_TIMEOUT_S)
        if answer.error is not None:
            raise GatewayError.of(answer.error)
        return [entry(model) for model in answer.models if not ready_only or model.state == "READY"]

    async def load(self, name: str) -> None:
        """Serve servable `name` (its workers are ready when this returns)."""
        await self._change("load", name)

    async def unload(self, name: str) -> None:
        """Stop serving servable `name` (its workers drained and stopped when this returns)."""
        await self._change("unload", name)

    async def _change(self, action: str, name: str) -> None:
        answer = await self._link.repository(action, name, timeout_s=CHANGE_TIMEOUT_S)
        if answer.error is not None:
            raise GatewayError.of(answer.error)


def entry(model: RepositoryModel) -> dict[str, Any]:
    """A repository model as a Triton index entry (empty fields left out, as Triton does)."""
    fields = {
        "name": model.name,
        "version": model.version,
        "state": model.state,
        "reason": model.reason,
    }
    return {key: value for key, value in fields.items() if value or key == "name"}
