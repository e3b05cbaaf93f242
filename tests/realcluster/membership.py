"""Day-2 membership changes against a real cluster: `etcd-member-join` and `etcd-member-leave`
run as the program will run them, with what systemd does for a joining member played here.

The cluster (`Site`): the program rendered for 5 members (so every member's certificates, DNS
record and namespace exist, all signed by one run's CAs), of which the first 3 are the founding
cluster and the others machines that booted but whose etcd was never started (cloud-init on a
joining member writes the unit and certificates, it does not start etcd). Test-side rendering,
kept to two edits of the program's own units:
- founding members: `--initial-cluster` lists the 3 founders only (what the program renders for
  memberCount 3; the token and everything else are the same);
- joining members (`joiner_unit`): no `--initial-cluster`/`--initial-cluster-state` flags, and
  `EnvironmentFile=/etc/etcd/initial-cluster.env` in [Service], which is where
  etcd-member-join puts ETCD_INITIAL_CLUSTER and ETCD_INITIAL_CLUSTER_STATE=existing (etcd reads
  them from its environment; a flag would shadow them). A member that is replaced (leaves, then
  joins again on a new machine) gets this unit too.
`Systemd` plays `systemctl start --no-block etcd` (a request file; the command returns at once,
a thread here starts the member: EnvironmentFile= is read at each start as systemd does and
given to ExecStart= through `env VAR=value ...`, the only change to what the unit runs) and
`systemctl stop etcd` (waits until the member has stopped). `MembershipScripts` runs the two
scripts as root in a member's namespace with its paths moved into the member root (realcluster/
rollout.py `MemberScripts`); a joining member's etcdctl.env lists the stack's endpoints (all
5 members, started or not), as the joiner must reach the cluster through others than itself.
`block_peers` drops a member's peer traffic (port 2380, both directions) with nftables inside
its namespace: a learner that can never catch up.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from realcluster.harness import PEER_PORT, Cluster, Result, run
from realcluster.member import EtcdMember
from realcluster.reconfigure import with_flag
from realcluster.rollout import GATE, SCRIPTS_DIR, MemberScripts
from realcluster.tools import nft
from realcluster.unitfile import parse_unit, service_of

JOIN = SCRIPTS_DIR / "etcd-member-join"
LEAVE = SCRIPTS_DIR / "etcd-member-leave"
INITIAL_CLUSTER_FILE = "/etc/etcd/initial-cluster.env"
LEFT_FILE = "/etc/etcd/left-cluster.env"
FOUNDERS = 3


def exec_start_flag(unit: str, flag: str) -> str | None:
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    for word in line.split(" "):
        if word.startswith(f"--{flag}="):
            return word.split("=", 1)[1]
    return None


def founder_unit(unit: str, founders: list[str]) -> str:
    """The unit with --initial-cluster listing only `founders`' name=peerURL entries."""
    initial = exec_start_flag(unit, "initial-cluster")
    assert initial is not None, unit
    kept = [entry for entry in initial.split(",") if entry.split("=", 1)[0] in founders]
    return with_flag(unit, "initial-cluster", ",".join(kept))


def joiner_unit(unit: str) -> str:
    """The unit of a joining member: the initial cluster from the EnvironmentFile, not flags."""
    unit = with_flag(with_flag(unit, "initial-cluster", None), "initial-cluster-state", None)
    lines = []
    for line in unit.splitlines():
        lines.append(line)
        if line == "[Service]":
            lines.append(f"EnvironmentFile={INITIAL_CLUSTER_FILE}")
    return "\n".join(lines) + "\n"


def environment_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads an EnvironmentFile= (comments and blanks skipped; the
    files here have no quotes)."""
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, _, value = line.partition("=")
        found[key.strip()] = value.strip()
    return found


def use_unit(member: EtcdMember, unit: str) -> None:
    """`unit` written as the member's etcd.service and loaded (as the harness starts it)."""
    member.unit_file.write_text(unit)
    written = service_of(parse_unit(unit))
    member.unit_text, member.service_as_written = unit, written
    member.service = written.remapped(member.remap)


class Systemd:
    """`systemctl start --no-block etcd` and `systemctl stop etcd` for the harness's members."""

    def __init__(self, cluster: Cluster, directory: Path) -> None:
        self.cluster = cluster
        self.requests = directory
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.starts: list[tuple[str, float]] = []
        self.stops: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="membership-systemd", daemon=True)
        self._thread.start()

    def start_command(self, member: EtcdMember) -> str:
        # --no-block: the job is queued, the command returns.
        return f"touch {shlex.quote(str(self.requests / f'start-{member.name}'))}"

    def stop_command(self, member: EtcdMember) -> str:
        request = shlex.quote(str(self.requests / f"stop-{member.name}"))
        return f"touch {request} && while [ -e {request} ]; do sleep 0.1; done"

    def _serve(self) -> None:
        while not self._stop.is_set():
            for request in sorted(self.requests.iterdir()):
                verb, _, name = request.name.partition("-")
                member = self.cluster.members[name]
                try:
                    if verb == "start":
                        self.start(member)
                    else:
                        member.stop()
                        self.stops.append((name, time.monotonic()))
                except Exception as error:  # what systemd would report as a failed job
                    self.errors.append(f"{verb} {name}: {error}")
                request.unlink()
            time.sleep(0.1)

    def start(self, member: EtcdMember) -> None:
        """Start the member unless it runs, with its unit's EnvironmentFile= read now."""
        if member.running:
            return
        unit = parse_unit(member.unit_text)
        service = service_of(unit).remapped(member.remap)
        variables: dict[str, str] = {}
        for path in unit.values("Service", "EnvironmentFile"):
            optional = path.startswith("-")
            target = member.path(path.lstrip("-"))
            if not target.exists() and optional:
                continue
            variables.update(environment_file(target.read_text()))
        if variables:
            env = shutil.which("env") or "/usr/bin/env"
            service = dataclasses.replace(service, exec_start=(
                env, *(f"{key}={value}" for key, value in variables.items()), *service.exec_start))
        member.service = service
        member.start()
        self.starts.append((member.name, time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


class MembershipScripts(MemberScripts):
    """etcd-member-join / etcd-member-leave as root in `member`'s namespace."""

    def __init__(self, cluster: Cluster, member: EtcdMember, systemd: Systemd) -> None:
        super().__init__(cluster, member)
        self.systemd = systemd
        # A joiner reaches the cluster through the stack's endpoints (itself among them).
        lines = [line for line in self.env_file.read_text().splitlines()
                 if not line.startswith("ETCDCTL_ENDPOINTS=")]
        lines.append(f"ETCDCTL_ENDPOINTS={','.join(cluster.endpoints())}")
        self.join_env_file = member.path("/etc/etcd/etcdctl.join.env")
        self.join_env_file.write_text("\n".join(lines) + "\n")
        self.join_env_file.chmod(0o600)
        self.tmp_dir = cluster.work / f"{member.name}-tmp"
        self.tmp_dir.mkdir(mode=0o700, exist_ok=True)

    @property
    def initial_cluster_file(self) -> Path:
        return self.member.path(INITIAL_CLUSTER_FILE)

    @property
    def left_file(self) -> Path:
        return self.member.path(LEFT_FILE)

    def environment(self, **extra: str) -> dict[str, str]:
        member = self.member
        return super().environment(**{
            "ETCD_GATE": str(GATE),
            "ETCD_GATE_TIMEOUT": "60",
            "ETCD_INITIAL_CLUSTER_FILE": str(self.initial_cluster_file),
            "ETCD_LEFT_FILE": str(self.left_file),
            "ETCD_UNIT_FILE": str(member.unit_file),
            "ETCD_START_COMMAND": self.systemd.start_command(member),
            "ETCD_STOP_COMMAND": self.systemd.stop_command(member),
            "TMPDIR": str(self.tmp_dir),
            **extra,
        })

    def join(self, *args: str, timeout: float = 600, env: Mapping[str, str] | None = None
             ) -> Result:
        member = self.member
        peer_url = exec_start_flag(member.unit_text, "initial-advertise-peer-urls")
        assert peer_url is not None
        return self.run(JOIN, "--name", member.name, "--peer-url", peer_url,
                        "--data-dir", str(member.data_dir), *args, timeout=timeout,
                        env={"ETCDCTL_ENV_FILE": str(self.join_env_file), **(env or {})})

    def leave(self, name: str | None = None, *args: str, timeout: float = 300,
              env: Mapping[str, str] | None = None) -> Result:
        return self.run(LEAVE, "--name", name or self.member.name, *args, timeout=timeout,
                        env=env)


def members(cluster: Cluster) -> list[dict[str, object]]:
    """`member list` (JSON) through the running members: ID, name, peerURLs, isLearner."""
    result = cluster.etcdctl("member", "list", "-w", "json",
                             endpoints=cluster.endpoints(cluster.running()), command_timeout=5)
    assert result.ok, result
    listed = json.loads(result.stdout)["members"]
    return [{"id": int(m["ID"]), "name": m.get("name", ""), "peers": m.get("peerURLs", []),
             "learner": bool(m.get("isLearner", False))} for m in listed]


def voting_names(cluster: Cluster) -> list[str]:
    return sorted(str(m["name"]) for m in members(cluster) if not m["learner"])


def block_peers(member: EtcdMember) -> None:
    """Drop every packet to or from port 2380 in `member`'s namespace (removed with it)."""
    table = "erc_block_peers"
    chains = [f"    chain {hook} {{\n        type filter hook {hook} priority 0; policy accept;\n"
              f"        tcp dport {PEER_PORT} drop\n        tcp sport {PEER_PORT} drop\n    }}\n"
              for hook in ("input", "output")]
    script = f"table inet {table} {{\n{''.join(chains)}}}\n"
    done = run(member.host.argv([nft(), "-f", "-"]), {"PATH": "/usr/sbin:/usr/bin:/bin"}, 30,
               stdin=script)
    # The table goes with the namespace when the cluster closes.
    assert done.ok, done
