"""The REST gateway's settings and its per-process state: broker link, catalog, V2 service.

Under gunicorn each worker process builds the app after the fork; its `Gateway` opens the
`BrokerLink` inside that worker's event loop at ASGI lifespan startup (or on first use when
the server runs no lifespan) and every request of the process shares it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msq.gateways.core.catalog import Catalog
from msq.gateways.core.link import BrokerLink
from msq.gateways.v2.service import V2Service
from msq.proto.curve import CurveClient
from msq.proto.deadline import DEFAULT_TIMEOUT_S
from msq.proto.transport import DEFAULT_FRONTEND
from msq.security import curve_client

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RestSettings:
    """What a REST gateway process needs to know.

    `ms_status_codes`: answer MindSpore Serving routes' errors with real 4xx/5xx codes instead
    of MindSpore Serving's HTTP 200.
    """

    broker: str = DEFAULT_FRONTEND
    max_body_bytes: int = 100 * MB
    ms_status_codes: bool = False
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    #: CURVE keys for the broker connection (None: plaintext).
    curve: CurveClient | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RestSettings:
        """Settings from `MSQ_BROKER`, `MSQ_REST_MAX_BODY_MB`, `MSQ_REST_HTTP_STATUS_CODES`
        (1/true/yes), `MSQ_REST_TIMEOUT_S` and the CURVE key files `MSQ_CURVE_SECRET_KEY` and
        `MSQ_CURVE_SERVER_KEY` (paths); unset ones keep their defaults."""
        defaults = cls()
        flag = environ.get("MSQ_REST_HTTP_STATUS_CODES", "").strip().lower()
        key_files = [environ.get(name) for name in ("MSQ_CURVE_SECRET_KEY", "MSQ_CURVE_SERVER_KEY")]
        return cls(
            broker=environ.get("MSQ_BROKER", defaults.broker),
            max_body_bytes=round(float(environ.get("MSQ_REST_MAX_BODY_MB", 100)) * MB),
            ms_status_codes=flag in ("1", "true", "yes", "on"),
            default_timeout_s=float(environ.get("MSQ_REST_TIMEOUT_S", defaults.default_timeout_s)),
            curve=curve_client(*(None if name is None else Path(name) for name in key_files)),
        )


class Gateway:
    """One process's link to the broker, its cached catalog and its V2 service; also the
    Falcon middleware that opens them at lifespan startup and closes them at shutdown."""

    def __init__(self, settings: RestSettings) -> None:
        self.settings = settings
        self._link: BrokerLink | None = None
        self._catalog: Catalog | None = None
        self._v2: V2Service | None = None

    @property
    def link(self) -> BrokerLink:
        """The process's link (opened on first use; call from the event loop)."""
        if self._link is None:
            self._link = BrokerLink(self.settings.broker, curve=self.settings.curve)
        return self._link

    @property
    def catalog(self) -> Catalog:
        """The servables the broker reports, cached briefly."""
        if self._catalog is None:
            self._catalog = Catalog(self.link.status)
        return self._catalog

    @property
    def v2(self) -> V2Service:
        """The Open Inference Protocol over this process's link and catalog."""
        if self._v2 is None:
            self._v2 = V2Service(self.link, self.catalog)
        return self._v2

    async def process_startup(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        """ASGI lifespan startup: connect to the broker early."""
        _ = self.catalog

    async def process_shutdown(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        """ASGI lifespan shutdown: close the link."""
        if self._link is not None:
            self._link.close()
            self._link = self._catalog = self._v2 = None
