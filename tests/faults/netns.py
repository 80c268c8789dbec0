"""Simulated hosts on one machine: Linux network namespaces joined by a bridge.

`Network` makes, with iproute2 as root, one namespace that holds only the switch (a bridge)
and one namespace per host, each with an `eth0` whose other end is a port of that bridge.
No link, address or route is added to the machine's own namespace: the hosts reach each other
and nothing else, and deleting the namespaces takes every link with them. Names are unique
per run (`lexintel-<random>-<host>`), so runs side by side do not meet.

A program runs on a host when it is started from a thread that has joined the host's
namespace (setns(2) changes only the calling thread; its children inherit it): `Host.call`
runs a function in such a thread, so the project's own helpers (`EmbeddedPostgres.start`,
`subprocess.Popen`, `asyncio.run` of a client) work unchanged on any host.

Faults, all silent (no RST, no FIN reaches the other side):
- `Network.detach(host)`: the host's switch port leaves the bridge (a pulled cable at the
  switch, or a partition): frames to and from the host are dropped; its link stays up.
- `Host.freeze()`: SIGSTOP to every process of the host (a dead machine keeps no time).
- `Network.cut(port, a, b)`: TCP packets of `port` between hosts `a` and `b` are dropped on
  the switch (an htb class whose queue holds 0 packets, chosen by u32 filters), so senders
  see loss and back off as on a real network; other traffic flows.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import secrets
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
SUBNET = "10.77.0"
NETNS_DIR = Path("/run/netns")
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    pass


def run_ip(*args: str, timeout: float = 20) -> str:
    """The output of `ip ARGS`; NetnsError with its message when it fails."""
    result = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result.stdout


def _enter(namespace: str) -> None:
    """Move the calling thread into network namespace `namespace`."""
    fd = os.open(NETNS_DIR / namespace, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {namespace}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def call_in(namespace: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` in a new thread inside `namespace`; its result or error."""
    outcome: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)

    def target() -> None:
        try:
            _enter(namespace)
            outcome.put((True, function(*args, **kwargs)))
        except BaseException as exc:  # handed to the caller
            outcome.put((False, exc))

    thread = threading.Thread(target=target, name=f"netns {namespace}", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome.get_nowait()
    if not ok:
        raise value
    result: T = value
    return result


@dataclass
class Host:
    network: Network
    name: str  # short: "data", "api", "w1"
    address: str
    port: str  # its switch port (in the switch namespace)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return f"{self.network.prefix}-{self.name}"

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `function` on this host (in a thread inside its namespace)."""
        return call_in(self.namespace, function, *args, **kwargs)

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start a program on this host, its output (both streams) into `log`."""
        handle = log.open("ab")
        self._logs.append(handle)
        process: subprocess.Popen[bytes] = self.call(
            subprocess.Popen,
            args,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        """Every process in this host's namespace (those started here and their children);
        never this one, whose threads only visit."""
        out = run_ip("netns", "pids", self.namespace)
        return [int(pid) for pid in out.split() if int(pid) != os.getpid()]

    def signal_all(self, signum: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def freeze(self) -> None:
        """Stop every process of the host where it stands (as a powered-off machine)."""
        self.signal_all(signal.SIGSTOP)

    def kill_all(self) -> None:
        """SIGKILL every process of the host (frozen ones too) and reap those we started."""
        self.signal_all(signal.SIGCONT)
        self.signal_all(signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        for handle in self._logs:
            handle.close()
        self._logs.clear()


class Network:
    """A bridge in a namespace of its own and hosts on it; `close()` removes them all."""

    def __init__(self) -> None:
        self.prefix = f"lexintel-{secrets.token_hex(3)}"
        self.switch = f"{self.prefix}-switch"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._cuts: set[str] = set()
        self._next_address = 2
        try:
            self._add_namespace(self.switch)
            run_ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            run_ip("-n", self.switch, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, namespace: str) -> None:
        run_ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        run_ip("-n", namespace, "link", "set", "lo", "up")

    def add_host(self, name: str) -> Host:
        """A new host `name` with an address of its own on the bridge."""
        if name in self.hosts:
            raise NetnsError(f"host {name} exists")
        address = f"{SUBNET}.{self._next_address}"
        self._next_address += 1
        host = Host(self, name, address, port=f"p-{name}")
        self._add_namespace(host.namespace)
        self.hosts[name] = host
        # Both ends are made in their namespaces: nothing appears in the machine's own.
        run_ip(
            "link", "add", "eth0", "netns", host.namespace, "type", "veth",
            "peer", "name", host.port, "netns", self.switch,
        )  # fmt: skip
        run_ip("-n", self.switch, "link", "set", host.port, "master", "br0")
        run_ip("-n", self.switch, "link", "set", host.port, "up")
        run_ip("-n", host.namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        run_ip("-n", host.namespace, "link", "set", "eth0", "up")
        return host

    def remove_host(self, host: Host) -> None:
        """Kill its processes and delete its namespace (and so its link)."""
        try:
            host.kill_all()
        finally:
            self.hosts.pop(host.name, None)
            self._cuts = {cut for cut in self._cuts if cut != host.port}
            if host.namespace in self._namespaces:
                self._namespaces.remove(host.namespace)
                run_ip("netns", "del", host.namespace)

    # -- faults ---------------------------------------------------------------------------

    def detach(self, host: Host) -> None:
        """Take the host's port off the bridge: nothing reaches it, nothing from it passes."""
        run_ip("-n", self.switch, "link", "set", host.port, "nomaster")

    def attach(self, host: Host) -> None:
        run_ip("-n", self.switch, "link", "set", host.port, "master", "br0")

    def _tc(self, *args: str) -> None:
        run_ip("netns", "exec", self.switch, "tc", *args)

    def _drop_class(self, port: str) -> None:
        """Give `port` an htb root whose class 1:2 drops everything sent into it."""
        if port in self._cuts:
            return
        self._tc("qdisc", "add", "dev", port, "root", "handle", "1:", "htb", "default", "1")
        self._tc("class", "add", "dev", port, "parent", "1:", "classid", "1:1", "htb",
                 "rate", "10gbit", "quantum", "60000")  # fmt: skip
        self._tc("class", "add", "dev", port, "parent", "1:", "classid", "1:2", "htb",
                 "rate", "10gbit", "quantum", "60000")  # fmt: skip
        self._tc("qdisc", "add", "dev", port, "parent", "1:2", "handle", "2:", "pfifo",
                 "limit", "0")  # fmt: skip
        self._cuts.add(port)

    def cut(self, port: int, server: Host, client: Host) -> None:
        """Drop TCP packets between `client` and `server`'s `port`, both ways, on the switch."""
        self._drop_class(server.port)
        self._drop_class(client.port)
        # To the server (leaving the switch through its port): from the client, to `port`.
        self._tc("filter", "add", "dev", server.port, "parent", "1:", "protocol", "ip",
                 "prio", "1", "u32", "match", "ip", "src", f"{client.address}/32",
                 "match", "ip", "dport", str(port), "0xffff", "flowid", "1:2")  # fmt: skip
        # To the client: from the server's `port`.
        self._tc("filter", "add", "dev", client.port, "parent", "1:", "protocol", "ip",
                 "prio", "1", "u32", "match", "ip", "src", f"{server.address}/32",
                 "match", "ip", "sport", str(port), "0xffff", "flowid", "1:2")  # fmt: skip

    def dropped(self, host: Host) -> int:
        """Packets dropped so far by cuts on `host`'s switch port."""
        if host.port not in self._cuts:
            return 0
        out = run_ip("netns", "exec", self.switch, "tc", "-s", "qdisc", "show", "dev", host.port)
        for block in out.split("qdisc ")[1:]:
            if block.startswith("pfifo 2:"):
                return int(block.split("dropped ")[1].split(",")[0])
        return 0

    def restore(self) -> None:
        """Remove every cut."""
        for port in sorted(self._cuts):
            self._tc("qdisc", "del", "dev", port, "root")
        self._cuts.clear()

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process on every host and delete every namespace, whatever failed."""
        errors: list[str] = []
        for host in list(self.hosts.values()):
            try:
                self.remove_host(host)
            except Exception as exc:  # go on with the others
                errors.append(f"{host.name}: {exc}")
        for namespace in reversed(self._namespaces):
            try:
                for pid in map(int, run_ip("netns", "pids", namespace).split()):
                    if pid != os.getpid():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                run_ip("netns", "del", namespace)
            except Exception as exc:
                errors.append(f"{namespace}: {exc}")
        self._namespaces.clear()
        if errors:
            raise NetnsError("cleanup left things behind: " + "; ".join(errors))
