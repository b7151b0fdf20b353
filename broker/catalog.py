"""What the broker serves: the routes of running servable versions, and their statistics."""

from __future__ import annotations

import logging

from msq.broker.routes import Route, RouteKey
from msq.broker.settings import BrokerSettings
from msq.broker.stats import RouteStats
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import MethodSignature, RouteInfo, ServableInfo

log = logging.getLogger(__name__)


def describe(key: RouteKey) -> str:
    """A route in words, for messages."""
    return f"servable {key.servable!r} version {key.version} method {key.method!r}"


class Catalog:
    """servable -> version -> method -> `Route`, for the routes some worker serves now.

    Statistics outlive routes: a method whose last worker left keeps its counters.
    """

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.servables: dict[str, dict[int, dict[str, Route]]] = {}
        self.stats: dict[RouteKey, RouteStats] = {}

    def add(self, key: RouteKey, signature: MethodSignature) -> Route:
        """The route for `key`, made from the announced signature if it is new."""
        methods = self.servables.setdefault(key.servable, {}).setdefault(key.version, {})
        route = methods.get(key.method)
        if route is None:
            stats = self.stats.setdefault(key, RouteStats(*key))
            policy = self.settings.policy_for(key.servable, signature.batching)
            route = methods[key.method] = Route(key, signature, policy, stats)
        elif route.signature.inputs != signature.inputs:
            log.warning("workers disagree on the inputs of %s; keeping the first", describe(key))
        return route

    def remove(self, route: Route) -> None:
        """Unroute a route (its last worker is gone)."""
        key = route.key
        versions = self.servables[key.servable]
        del versions[key.version][key.method]
        if not versions[key.version]:
            del versions[key.version]
        if not versions:
            del self.servables[key.servable]

    def accepting(self, servable: str) -> dict[int, dict[str, Route]]:
        """The versions of `servable` that take new requests: some worker does not drain."""
        return {
            version: methods
            for version, methods in self.servables.get(servable, {}).items()
            if any(route.accepting for route in methods.values())
        }

    def resolve(self, servable: str, version: int, method: str) -> Route | Failure:
        """The route a request names; version 0 is the highest running version (versions all
        of whose workers drain are no longer running)."""
        versions = self.accepting(servable)
        if not versions:
            return Failure(
                ErrorKind.NOT_FOUND, f"servable is not available: {servable!r} is not served"
            )
        version = version or max(versions)
        methods = versions.get(version)
        if methods is None:
            return Failure(
                ErrorKind.NOT_FOUND,
                f"servable is not available: {servable!r} version {version} is not "
                f"served (running versions: {sorted(versions)})",
            )
        route = methods.get(method)
        if route is None:
            return Failure(
                ErrorKind.NOT_FOUND,
                f"method is not available: servable {servable!r} version {version} has "
                f"no method {method!r} (methods: {sorted(methods)})",
            )
        return route

    def routes(self) -> list[Route]:
        """Every route served now."""
        return [
            route
            for versions in self.servables.values()
            for methods in versions.values()
            for route in methods.values()
        ]

    def infos(self) -> list[ServableInfo]:
        """The running servable versions (not those that drain), with their effective batching
        policies."""
        return [
            ServableInfo(
                servable=name,
                version=version,
                methods=tuple(
                    MethodSignature(
                        r.signature.name, r.signature.inputs, r.signature.outputs, r.policy
                    )
                    for r in methods.values()
                ),
                workers=len(set().union(*(route.workers for route in methods.values()))),
            )
            for name in sorted(self.servables)
            for version, methods in sorted(self.accepting(name).items())
        ]

    def report(self) -> list[dict[str, object]]:
        """Every route's statistics, with what is queued and running now."""
        routes = {route.key: route for route in self.routes()}
        return [
            stats.report(
                queued=routes[key].live if key in routes else 0,
                in_flight=routes[key].in_flight if key in routes else 0,
            )
            for key, stats in sorted(self.stats.items())
        ]

    def live(self, now: float, uptime_s: float) -> list[RouteInfo]:
        """Every route served now: its queue, running jobs, workers and last minute."""
        return [
            RouteInfo(
                *route.key,
                queued=route.live,
                in_flight=route.in_flight,
                workers=len(route.workers),
                window=route.stats.window.figures(now, uptime_s),
            )
            for route in sorted(self.routes(), key=lambda route: route.key)
        ]
