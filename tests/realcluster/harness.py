"""A real etcd cluster built from what the Pulumi program produced, and a client to talk to it.

`program_config(line, members)` is the stack configuration; run the program with it (the test
fixture `program` from tests/conftest.py, or `program.run_program`), pass the run to
`artifacts_of(run)`, and `Cluster(artifacts)` makes the network (one namespace per member, a
client namespace, a monitoring namespace, each name resolving to the address of its DNS record)
and installs every member from its own user-data. Client-side commands run inside the client
namespace with the stack's exported CA and kube-apiserver client certificate.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from program import DNS_RECORD, DROPLET, FIREWALL, ProgramRun

from model.cluster_spec import main_cluster
from model.firewall import InboundRule, inbound_rules
from model.settings import Settings
from realcluster import cleanup
from realcluster.member import EtcdMember
from realcluster.netns import Host, Network, stale
from realcluster.tools import PROGRAM_VERSION, EtcdRelease, etcd_release, tools
from realcluster.unitfile import SYSTEMD_PATH

MONITORING_TAG = "prometheus"
CLIENT_PORT, PEER_PORT, METRICS_PORT = 2379, 2380, 2381


def program_config(line: str, members: int) -> dict[str, Any]:
    """Stack configuration for a cluster of `members` on etcd `line` (built-in checksum)."""
    return {
        "etcdVersion": PROGRAM_VERSION[line],
        "memberCount": members,
        "etcdSha256": None,  # the program's own pinned checksum for that release
        "monitoringSourceTags": [MONITORING_TAG],
    }


@dataclass(frozen=True)
class MemberArtifacts:
    name: str
    fqdn: str
    address: str
    user_data: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Artifacts:
    """What the program produced that a real cluster needs."""

    version: str
    line: str
    settings: Settings
    members: tuple[MemberArtifacts, ...]
    # The DNS A records the program creates: name -> private address.
    records: dict[str, str]
    outputs: dict[str, Any]
    firewall_rules: tuple[InboundRule, ...]
    firewall_inputs: dict[str, Any]


def artifacts_of(run: ProgramRun) -> Artifacts:
    settings = run.program_globals["settings"]
    assert isinstance(settings, Settings)
    records = {reg.inputs["name"]: reg.inputs["content"] for reg in run.of_type(DNS_RECORD)
               if reg.inputs.get("type") == "A"}
    droplets = run.named(DROPLET)
    members = []
    for member in run.output("members"):
        droplet = droplets[member["name"]]
        address = records[member["fqdn"]]
        assert address == member["private_ipv4"], (member, address)
        members.append(MemberArtifacts(
            name=member["name"], fqdn=member["fqdn"], address=address,
            user_data=run.user_data[member["name"]], tags=tuple(droplet.inputs["tags"])))
    (firewall,) = run.of_type(FIREWALL)
    return Artifacts(
        version=settings.etcd_version,
        line=settings.etcd_line,
        settings=settings,
        members=tuple(members),
        records=records,
        outputs={name: run.output(name) for name in run.outputs},
        firewall_rules=tuple(inbound_rules(main_cluster(settings))),
        firewall_inputs=dict(firewall.inputs),
    )


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()

    def __str__(self) -> str:
        return (f"$ {' '.join(self.argv)}\nexit {self.returncode} after {self.seconds:.2f}s\n"
                f"{self.output}")


def run(argv: Sequence[str], env: Mapping[str, str], timeout: float, stdin: str | None = None,
        cwd: str = "/") -> Result:
    started = time.monotonic()
    try:
        done = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True,
                              timeout=timeout, input=stdin, cwd=cwd)
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        code = -9
        out = _text(expired.stdout)
        err = _text(expired.stderr) + f"\n(harness: killed after {timeout}s)"
    return Result(tuple(argv), code, out, err, time.monotonic() - started)


def end_process(process: subprocess.Popen[bytes]) -> None:
    """A process this test started, ended: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@functools.cache
def _reap_stale_work_dirs() -> None:
    """Work directories of runs of this harness killed outright (see netns.reap_stale_runs)."""
    for directory in Path(tempfile.gettempdir()).glob("erc*-*"):
        if directory.is_dir() and stale(directory.name):
            shutil.rmtree(directory, ignore_errors=True)


class ClusterError(AssertionError):
    pass


class Cluster:
    """The members, the client and monitoring namespaces, and the client's files."""

    def __init__(self, artifacts: Artifacts, release: EtcdRelease | None = None) -> None:
        self.artifacts = artifacts
        self.release = release or etcd_release(artifacts.line)
        self.tools = tools()
        self._tokens: list[int] = []
        if not os.environ.get("REALCLUSTER_KEEP"):
            _reap_stale_work_dirs()
        self.work = Path(tempfile.mkdtemp(prefix=f"erc{os.getpid()}-"))
        self.work.chmod(0o755)
        if not os.environ.get("REALCLUSTER_KEEP"):
            self._tokens.append(cleanup.register(
                f"directory {self.work}", lambda: shutil.rmtree(self.work, ignore_errors=True)))
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        artifacts = self.artifacts
        first = ipaddress.ip_address(artifacts.members[0].address)
        subnet = ipaddress.IPv4Network(f"{first}/24", strict=False)
        used = {ipaddress.ip_address(member.address) for member in artifacts.members}
        free = (address for address in reversed(list(subnet.hosts())) if address not in used)
        self.network = Network(subnet)
        self._tokens.append(cleanup.register("network", self.network.close))
        self.members: dict[str, EtcdMember] = {}
        for spec in artifacts.members:
            host = self.network.add_host(spec.name, spec.address)
            self.members[spec.name] = EtcdMember(
                spec.name, spec.fqdn, host, self.work / spec.name, spec.user_data, self.release,
                self.work / f"{spec.name}.log", self.work / f"{spec.name}.notify")
        self.client = self.network.add_host("client", str(next(free)))
        self.monitor = self.network.add_host("monitor", str(next(free)))
        self.network.set_names(artifacts.records)
        for member in self.members.values():
            member.install()
        # The client's files: exactly what the stack exports for kube-apiserver.
        self.client_dir = self.work / "client"
        self.client_dir.mkdir(mode=0o700)
        self.home = self.work / "home"
        self.home.mkdir(mode=0o700)
        self.ca = self.write_client_file("ca.crt", artifacts.outputs["ca_pem"])
        self.cert = self.write_client_file("apiserver-etcd-client.crt",
                                           artifacts.outputs["apiserver_client_cert_pem"])
        self.key = self.write_client_file("apiserver-etcd-client.key",
                                          artifacts.outputs["apiserver_client_key_pem"])

    def write_client_file(self, name: str, content: str) -> Path:
        path = self.client_dir / name
        path.write_text(content)
        path.chmod(0o600)
        return path

    # --- members ---------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.members)

    def start(self, names: Iterable[str] | None = None) -> None:
        for name in list(names) if names is not None else self.names:
            self.members[name].start()

    def stop(self, names: Iterable[str] | None = None) -> None:
        """`systemctl stop etcd` on each named member at once (SIGTERM, then wait)."""
        chosen = list(names) if names is not None else self.names
        for name in chosen:
            self.members[name].send_stop()
        for name in chosen:
            self.members[name].stop()

    def running(self) -> list[str]:
        return [name for name, member in self.members.items() if member.running]

    def wait_ready(self, names: Iterable[str] | None = None, timeout: float = 120) -> float:
        """Wait for READY=1 from each member; seconds waited. Raises with the logs if not."""
        started = time.monotonic()
        deadline = started + timeout
        for name in list(names) if names is not None else self.names:
            member = self.members[name]
            if not member.wait_ready(max(0.0, deadline - time.monotonic())):
                raise ClusterError(f"{name} did not report READY=1 within {timeout}s "
                                   f"(running: {member.running})\n{member.log_tail()}")
        return time.monotonic() - started

    def logs(self, names: Iterable[str] | None = None) -> str:
        return "\n".join(self.members[name].log_tail()
                         for name in (list(names) if names is not None else self.names))

    # --- client side -----------------------------------------------------------------------
    def endpoints(self, names: Iterable[str] | None = None) -> list[str]:
        return [f"https://{self.members[name].fqdn}:{CLIENT_PORT}"
                for name in (list(names) if names is not None else self.names)]

    def client_env(self, **extra: str) -> dict[str, str]:
        return {"PATH": SYSTEMD_PATH, "HOME": str(self.home), **extra}

    def operator_env(self) -> dict[str, str]:
        """An operator's shell in the client namespace: etcd.sh (the stack's `etcdctl_env`) in
        the work directory (run there), the line's etcdctl/etcdutl on PATH, a HOME of its own."""
        (self.work / "etcd.sh").write_text(self.artifacts.outputs["etcdctl_env"])
        bindir = self.work / "operator-bin"
        bindir.mkdir(exist_ok=True)
        for tool in ("etcdctl", "etcdutl"):
            binary = getattr(self.release, tool)
            if binary is not None and not (bindir / tool).exists():
                (bindir / tool).symlink_to(binary)
        home = self.work / "operator-home"
        home.mkdir(mode=0o700, exist_ok=True)
        return {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(home)}

    def in_client(self, argv: Sequence[str], timeout: float = 60, host: Host | None = None,
                  env: Mapping[str, str] | None = None, stdin: str | None = None,
                  cwd: str = "/") -> Result:
        where = host or self.client
        return run(where.argv(argv), env if env is not None else self.client_env(), timeout,
                   stdin, cwd)

    def etcdctl(self, *args: str, endpoints: Sequence[str] | None = None,
                cacert: Path | None = None, cert: Path | None = None, key: Path | None = None,
                client_cert: bool = True, command_timeout: float = 5, timeout: float = 60,
                host: Host | None = None) -> Result:
        """Real etcdctl of the cluster's line, in the client namespace, with the exported
        kube-apiserver client certificate unless told otherwise (`client_cert=False`: none)."""
        argv = [str(self.release.etcdctl),
                f"--endpoints={','.join(endpoints or self.endpoints())}",
                f"--cacert={cacert or self.ca}"]
        if client_cert:
            argv += [f"--cert={cert or self.cert}", f"--key={key or self.key}"]
        argv += [f"--command-timeout={command_timeout}s",
                 f"--dial-timeout={min(command_timeout, 5)}s", *args]
        return self.in_client(argv, timeout=timeout, host=host)

    def put(self, key: str, value: str, names: Iterable[str] | None = None,
            command_timeout: float = 5) -> Result:
        return self.etcdctl("put", key, value, endpoints=self.endpoints(names),
                            command_timeout=command_timeout)

    def get_prefix(self, prefix: str, names: Iterable[str] | None = None) -> dict[str, str]:
        """Every key under `prefix` (linearizable read); raises if the read fails."""
        result = self.etcdctl("get", prefix, "--prefix", "-w", "json",
                              endpoints=self.endpoints(names), command_timeout=15)
        if not result.ok:
            raise ClusterError(f"read of {prefix!r} failed:\n{result}")
        found: dict[str, str] = {}
        for kv in json.loads(result.stdout).get("kvs", []):
            found[base64.b64decode(kv["key"]).decode()] = base64.b64decode(
                kv.get("value", "")).decode()
        return found

    def healthy(self, names: Iterable[str] | None = None, command_timeout: float = 3) -> Result:
        return self.etcdctl("endpoint", "health", endpoints=self.endpoints(names),
                            command_timeout=command_timeout, timeout=30)

    def wait_healthy(self, names: Iterable[str] | None = None, timeout: float = 120) -> float:
        """Poll `etcdctl endpoint health` until every named member is healthy; seconds waited."""
        chosen = list(names) if names is not None else self.names
        started = time.monotonic()
        last: Result | None = None
        for _ in range(int(timeout / 0.2) + 1):
            last = self.healthy(chosen)
            if last.ok:
                return time.monotonic() - started
            dead = [name for name in chosen if not self.members[name].running]
            if dead:
                raise ClusterError(f"members exited: {dead}\n{self.logs(dead)}")
            if time.monotonic() - started > timeout:
                break
            time.sleep(0.2)
        raise ClusterError(f"{chosen} not healthy within {timeout}s:\n{last}\n{self.logs(chosen)}")

    def member_ids(self) -> dict[int, str]:
        """member ID -> name, from `member list` on the running members."""
        result = self.etcdctl("member", "list", "-w", "json",
                              endpoints=self.endpoints(self.running()), command_timeout=5)
        if not result.ok:
            raise ClusterError(f"member list failed:\n{result}")
        # JSON omits empty fields: a member that has not started yet has no name.
        return {int(member["ID"]): member.get("name", "")
                for member in json.loads(result.stdout)["members"]}

    def statuses(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """`endpoint status` of each named member that answers (others left out)."""
        found: dict[str, dict[str, Any]] = {}
        for name in names:
            result = self.etcdctl("endpoint", "status", "-w", "json",
                                  endpoints=self.endpoints([name]), command_timeout=1, timeout=10)
            if result.ok:
                (entry,) = json.loads(result.stdout)
                found[name] = entry["Status"]
        return found

    def leader(self, names: Iterable[str] | None = None, ids: Mapping[int, str] | None = None
               ) -> str | None:
        """The leader the named running members agree on, or None."""
        ids = ids or self.member_ids()
        statuses = self.statuses(list(names) if names is not None else self.running())
        # JSON omits a zero leader (a member that has none right now).
        leaders = {int(status.get("leader", 0)) for status in statuses.values()}
        if not statuses or len(leaders) != 1 or 0 in leaders:
            return None
        return ids.get(leaders.pop())

    def curl(self, *args: str, host: Host | None = None, timeout: float = 30) -> Result:
        return self.in_client([self.tools.curl, "--silent", "--show-error", *args],
                              timeout=timeout, host=host)

    def openssl(self, *args: str, host: Host | None = None, timeout: float = 30,
                stdin: str = "") -> Result:
        return self.in_client([self.tools.openssl, *args], timeout=timeout, host=host,
                              stdin=stdin)

    # --- teardown --------------------------------------------------------------------------
    def close(self) -> None:
        """Kill the members, remove namespaces, /etc/netns entries and files (idempotent)."""
        for member in getattr(self, "members", {}).values():
            member.close()
        while self._tokens:
            cleanup.run(self._tokens.pop())
