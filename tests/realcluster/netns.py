"""A private network of namespaces: a bridge in a namespace of its own, one namespace per host.

Nothing touches the root namespace's networking. The bridge lives in its own namespace; each
host's veth pair is created inside that namespace with its far end created directly in the
host's namespace as `eth0` (`ip -n BRIDGE link add vN type veth peer name eth0 netns HOST`).
Names resolve through `/etc/netns/HOST/hosts`, which `ip netns exec` bind-mounts over /etc/hosts
for the command it runs (in a mount namespace of its own, so the host's /etc/hosts is untouched).
Namespace names carry the pid, so concurrent runs never collide. Everything made here is undone
through `cleanup` (fixture finalizers, atexit, signals), deleting only what this process made.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import itertools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from realcluster import cleanup
from realcluster.tools import require_namespaces, tools

NETNS_ETC = Path("/etc/netns")
# Everything this harness names starts with erc<pid>- (namespaces, /etc/netns entries, work dirs).
STALE_NAME = re.compile(r"^erc(\d+)-")
_networks = itertools.count()
# Whether this process made /etc/netns (then it removes it again once empty).
_made_netns_etc = False


def _ip(*args: str, timeout: float = 30) -> None:
    done = subprocess.run([tools().ip, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class Host:
    """One namespace on the network: a member, the client or the monitoring host."""

    label: str
    namespace: str
    address: str

    def argv(self, command: Sequence[str]) -> list[str]:
        """`command` run inside this namespace, with the network's hosts file as /etc/hosts.

        `ip netns exec` execs the command (no fork), so the PID of a process started with this
        argv is the PID of the command itself.
        """
        return [tools().ip, "netns", "exec", self.namespace, *command]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale(name: str, pattern: re.Pattern[str] = STALE_NAME) -> bool:
    """A name a harness made (`erc<pid>-...`, or `pattern` with the PID as its first group) in a
    process that no longer exists."""
    found = pattern.match(name)
    if found is None:
        return False
    pid = int(found.group(1))
    return pid != os.getpid() and not process_alive(pid)


@functools.cache
def reap_stale_runs() -> list[str]:
    """Remove namespaces and /etc/netns entries left by runs of this harness that were killed
    outright (SIGKILL: nothing could clean up; their etcd processes died with them through
    their parent-death signal). Only names with this harness's prefix and a dead pid."""
    removed = []
    listing = subprocess.run([tools().ip, "netns", "list"], capture_output=True, text=True,
                             timeout=30).stdout
    for line in listing.splitlines():
        name = line.split(" ", 1)[0]
        if name and stale(name):
            subprocess.run([tools().ip, "netns", "del", name], capture_output=True, timeout=30)
            removed.append(f"network namespace {name}")
    if NETNS_ETC.is_dir():
        for directory in NETNS_ETC.iterdir():
            if stale(directory.name):
                shutil.rmtree(directory, ignore_errors=True)
                removed.append(str(directory))
    return removed


class Network:
    """A /24 with a bridge; hosts get addresses on it and a shared hosts file."""

    def __init__(self, subnet: ipaddress.IPv4Network) -> None:
        require_namespaces()
        reap_stale_runs()
        if subnet.prefixlen != 24 or not subnet.is_private:
            raise ValueError(f"want a private /24, got {subnet}")
        self.subnet = subnet
        self.prefix = f"erc{os.getpid()}-{next(_networks)}"
        self.hosts: dict[str, Host] = {}
        self._tokens: list[int] = []
        self._links = itertools.count(1)
        self.bridge_namespace = self._add_namespace("br")
        _ip("-n", self.bridge_namespace, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge_namespace, "link", "set", "br0", "up")

    def _add_namespace(self, label: str) -> str:
        name = f"{self.prefix}-{label}"
        _ip("netns", "add", name)
        self._tokens.append(cleanup.register(f"network namespace {name}",
                                             lambda: _ip("netns", "del", name)))
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def add_host(self, label: str, address: str) -> Host:
        if ipaddress.ip_address(address) not in self.subnet:
            raise ValueError(f"{address} is not in {self.subnet}")
        if label in self.hosts:
            raise ValueError(f"host {label} exists")
        namespace = self._add_namespace(label)
        link = f"v{next(self._links)}"
        _ip("-n", self.bridge_namespace, "link", "add", link, "type", "veth",
            "peer", "name", "eth0", "netns", namespace)
        _ip("-n", self.bridge_namespace, "link", "set", link, "master", "br0", "up")
        _ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        host = Host(label=label, namespace=namespace, address=address)
        self.hosts[label] = host
        return host

    def set_names(self, names: Mapping[str, str]) -> None:
        """name -> address for every host (the private DNS records), via /etc/netns/NS/hosts."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{address}\t{name}" for name, address in names.items()]
        content = "\n".join(lines) + "\n"
        for host in self.hosts.values():
            directory = NETNS_ETC / host.namespace
            if not directory.exists():
                _makedirs(directory)
                self._tokens.append(cleanup.register(
                    f"directory {directory}", functools.partial(_remove_netns_dir, directory)))
            hosts = directory / "hosts"
            hosts.write_text(content)
            hosts.chmod(0o644)

    def close(self) -> None:
        while self._tokens:
            cleanup.run(self._tokens.pop())


def _makedirs(directory: Path) -> None:
    global _made_netns_etc
    # /etc/netns may be removed by another run between the parent check and mkdir: retry.
    for attempt in range(5):
        try:
            if not NETNS_ETC.exists():
                with contextlib.suppress(FileExistsError):
                    NETNS_ETC.mkdir(mode=0o755)
                    _made_netns_etc = True
            directory.mkdir(mode=0o755)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise
            time.sleep(0.05)


def _remove_netns_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    # /etc/netns itself only if this process made it and nothing else (another run) uses it.
    if _made_netns_etc:
        with contextlib.suppress(OSError):
            NETNS_ETC.rmdir()
