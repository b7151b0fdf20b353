"""Several "hosts" on one machine: Linux network namespaces joined by veth links to a bridge.

Each host is a namespace with loopback and one interface, `eth0`, whose peer sits on a bridge in
a switch namespace; hosts get 198.18.0.1, .2, ... (198.18.0.0/15 is reserved for network
benchmark tests, RFC 2544). Nothing is made in the test's own namespace: every link is created
directly inside the namespaces, and deleting the namespaces removes everything. Needs root and
`ip netns`; `unavailable()` says why not, for a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

from tests.processes import Proc

SUBNET = "198.18.0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"msq-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns add` does not work here: {exc}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Network:
    """Hosts (network namespaces) on one bridge; use as a context manager."""

    hosts: list[str]
    prefix: str = field(default_factory=lambda: f"msq{os.getpid()}")
    made: list[str] = field(default_factory=list)

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        """The host's IPv4 address."""
        return f"{SUBNET}.{self.hosts.index(host) + 1}"

    def __enter__(self) -> Network:
        try:
            switch = self._add_namespace("switch")
            _ip("-n", switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", switch, "link", "set", "br0", "up")
            for index, host in enumerate(self.hosts, start=1):
                namespace = self._add_namespace(host)
                port = f"port{index}"
                _ip("link", "add", "eth0", "netns", namespace, "type", "veth",
                    "peer", "name", port, "netns", switch)  # fmt: skip
                _ip("-n", switch, "link", "set", port, "master", "br0", "up")
                _ip("-n", namespace, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
                _ip("-n", namespace, "link", "set", "eth0", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def _add_namespace(self, name: str) -> str:
        namespace = self.namespace(name)
        _ip("netns", "add", namespace)
        self.made.append(namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        return namespace

    def take_down(self, host: str) -> None:
        """Cut the host off the network (its processes keep running, unreachable)."""
        _ip("-n", self.namespace(host), "link", "set", "eth0", "down")

    def remove(self) -> None:
        """Delete every namespace made (and with them every link)."""
        while self.made:
            namespace = self.made.pop()
            subprocess.run(
                ["ip", "netns", "del", namespace], check=False, capture_output=True, timeout=30
            )

    def on(self, host: str, proc: Proc) -> Proc:
        """`proc` (not started), to run on `host`."""
        proc.args = ["ip", "netns", "exec", self.namespace(host), *proc.args]
        proc.name = f"{host}-{proc.name}"
        return proc

    def run(self, host: str, args: list[str], timeout_s: float = 120.0) -> str:
        """Run a command on `host`; its stdout (CalledProcessError if it fails)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace(host), *args],
            capture_output=True, text=True, timeout=timeout_s, check=True,
        )  # fmt: skip
        return done.stdout
