"""Day-2 membership changes against a real cluster: `etcd-member-join` and `etcd-member-leave`
run as the program will run them, with what systemd does for a joining member played here.

The cluster (`Site`): the program rendered for 5 members (so every member's certificates, DNS
record and namespace exist, all signed by one run's CAs), of which the first 3 are the founding
cluster and the others machines that booted but whose etcd never started. The program's units
are used as they are (a member's unit does not depend on the membership); the test edits only
the initial-cluster files (`found_with`): the founders' list the 3 founders (what the program
writes for memberCount 3), and the others have none (what a joining member's user-data writes),
so their units' conditions keep etcd down until `etcd-member-join` writes the file.
`Systemd` plays `systemctl start --no-block etcd` (a request file; the command returns at once,
a thread here starts the member as realcluster/member.py does: conditions checked and
EnvironmentFile= read at each start) and `systemctl stop etcd` (waits until the member has
stopped). `MembershipScripts` runs the two scripts as root in a member's namespace with its
paths moved into the member root (realcluster/rollout.py `MemberScripts`); a join runs either
through `--endpoints` (the running members' client URLs, as the program runs it) or through an
etcdctl.env that lists the stack's endpoints (all 5 members, started or not), as the joiner
must reach the cluster through others than itself.
`block_peers` drops a member's peer traffic (port 2380, both directions) with nftables inside
its namespace: a learner that can never catch up.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from cloudinit.etcd_flags import DEFAULT_PATHS
from realcluster.harness import PEER_PORT, Cluster, Result, run
from realcluster.member import EtcdMember
from realcluster.rollout import GATE, SCRIPTS_DIR, MemberScripts
from realcluster.tools import nft
from realcluster.unitfile import environment_file

JOIN = SCRIPTS_DIR / "etcd-member-join"
LEAVE = SCRIPTS_DIR / "etcd-member-leave"
INITIAL_CLUSTER_FILE = DEFAULT_PATHS.initial_cluster_file
LEFT_FILE = "/etc/etcd/left-cluster.env"
FOUNDERS = 3


def exec_start_flag(unit: str, flag: str) -> str | None:
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    for word in line.split(" "):
        if word.startswith(f"--{flag}="):
            return word.split("=", 1)[1]
    return None


def found_with(member: EtcdMember, founders: list[str]) -> None:
    """The member's initial-cluster file as the program writes it when `founders` found the
    cluster: listing only them on a founder, none on a member that joins later."""
    path = member.path(INITIAL_CLUSTER_FILE)
    if member.name not in founders:
        path.unlink()
        return
    text = path.read_text()
    listed = environment_file(text)["ETCD_INITIAL_CLUSTER"]
    kept = [entry for entry in listed.split(",") if entry.split("=", 1)[0] in founders]
    path.write_text(text.replace(f"ETCD_INITIAL_CLUSTER={listed}\n",
                                 f"ETCD_INITIAL_CLUSTER={','.join(kept)}\n"))


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
        """Start the member unless it runs (or its unit's conditions do not hold)."""
        if member.running:
            return
        member.start()
        if member.running:
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

    def join(self, *args: str, timeout: float = 600, env: Mapping[str, str] | None = None,
             endpoints: list[str] | None = None) -> Result:
        """The join; through `endpoints` (`--endpoints`, as the program runs it, with the
        member's own etcdctl.env), or without them through an etcdctl.env that lists every
        member's endpoint."""
        member = self.member
        peer_url = exec_start_flag(member.unit_text, "initial-advertise-peer-urls")
        assert peer_url is not None
        through: tuple[str, ...] = ()
        join_env = {"ETCDCTL_ENV_FILE": str(self.join_env_file)}
        if endpoints is not None:
            through, join_env = ("--endpoints", ",".join(endpoints)), {}
        return self.run(JOIN, "--name", member.name, "--peer-url", peer_url, *through,
                        "--data-dir", str(member.data_dir), *args, timeout=timeout,
                        env={**join_env, **(env or {})})

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
