"""The etcd command line for one member, generated per version line.

Pure: no Pulumi imports. The flags go on the unit's command line rather than into ETCD_*
variables or a config file: etcd refuses an unknown flag at start, while it only warns about an
unknown variable and ignores an unknown config-file key, so a mistake here fails loudly.

The one exception is the initial cluster (`initial_cluster_environment`): which members found
the cluster, or which ones run when a member joins, is written to the member's initial-cluster
file (the unit's EnvironmentFile=) as ETCD_INITIAL_CLUSTER and ETCD_INITIAL_CLUSTER_STATE. etcd
reads it only at a member's first start, and it is the only part of the command line that
depends on the membership: with it out of the unit, adding or removing a member changes no
running member's unit, so no membership change restarts the other members. A member founding
the cluster gets the file from its user-data; a joining member's is written by
`etcd-member-join` once the cluster has added it as a learner (until then the unit's
conditions keep etcd from starting at all).

What differs between lines (each checked in the tests against the real binary's help for 3.4
and 3.5, and against a flag list read from etcd's source for 3.6 and 3.7):
- 3.4 logs with capnslog unless `--logger=zap`, and has `--pre-vote` off by default.
- 3.4 and 3.5 spell data-integrity checks as `--experimental-*` flags; 3.6 turned them into
  `--feature-gates` (the experimental spellings still parse, deprecated); 3.7 removed them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from model.settings import EtcdTuning
from model.topology import (
    CLIENT_PORT,
    METRICS_PORT,
    PEER_PORT,
    Member,
    Topology,
    initial_cluster,
)


@dataclass(frozen=True)
class EtcdPaths:
    """Where the unit finds its files on a member."""

    pki_dir: str = "/etc/etcd/pki"
    data_dir: str = "/var/lib/etcd/data"
    binary: str = "/usr/local/bin/etcd"
    # ETCD_INITIAL_CLUSTER and ETCD_INITIAL_CLUSTER_STATE (the unit's EnvironmentFile=).
    initial_cluster_file: str = "/etc/etcd/initial-cluster.env"

    @property
    def member_dir(self) -> str:
        """What etcd creates in the data dir at a member's first start (its WAL and snapshots)."""
        return f"{self.data_dir}/member"

    @property
    def client_ca(self) -> str:
        return f"{self.pki_dir}/ca.crt"

    @property
    def peer_ca(self) -> str:
        return f"{self.pki_dir}/peer-ca.crt"

    @property
    def server_cert(self) -> str:
        return f"{self.pki_dir}/server.crt"

    @property
    def server_key(self) -> str:
        return f"{self.pki_dir}/server.key"

    @property
    def peer_cert(self) -> str:
        return f"{self.pki_dir}/peer.crt"

    @property
    def peer_key(self) -> str:
        return f"{self.pki_dir}/peer.key"

    @property
    def healthcheck_cert(self) -> str:
        return f"{self.pki_dir}/healthcheck-client.crt"

    @property
    def healthcheck_key(self) -> str:
        return f"{self.pki_dir}/healthcheck-client.key"


DEFAULT_PATHS = EtcdPaths()

# How often a watch without events still gets a progress notification; kubeadm sets 5s so
# kube-apiserver's watch cache learns the current revision.
WATCH_PROGRESS_NOTIFY_INTERVAL = "5s"


def etcd_flags(
    line: str,
    member: Member,
    topology: Topology,
    tuning: EtcdTuning,
    paths: EtcdPaths = DEFAULT_PATHS,
) -> list[str]:
    """The full `--flag=value` list for `member` on etcd version line `line` ("3.4" .. "3.7")."""
    flags: dict[str, str] = {
        "name": member.name,
        "data-dir": paths.data_dir,
        # Listen on every address: the private address is not known when user-data is rendered;
        # the cloud firewall decides who reaches which port.
        "listen-client-urls": f"https://0.0.0.0:{CLIENT_PORT}",
        "advertise-client-urls": member.client_url,
        "listen-peer-urls": f"https://0.0.0.0:{PEER_PORT}",
        "initial-advertise-peer-urls": member.peer_url,
        "listen-metrics-urls": f"http://0.0.0.0:{METRICS_PORT}",
        # The token is the cluster's for its whole life; the initial members are not (above).
        "initial-cluster-token": topology.cluster_token,
        # Client port: server cert, clients must present a cert from the client CA.
        "cert-file": paths.server_cert,
        "key-file": paths.server_key,
        "trusted-ca-file": paths.client_ca,
        "client-cert-auth": "true",
        # Peer port: its own CA, so no client certificate is ever accepted as a peer.
        "peer-cert-file": paths.peer_cert,
        "peer-key-file": paths.peer_key,
        "peer-trusted-ca-file": paths.peer_ca,
        "peer-client-cert-auth": "true",
        "heartbeat-interval": str(tuning.heartbeat_interval_ms),
        "election-timeout": str(tuning.election_timeout_ms),
        "quota-backend-bytes": str(tuning.quota_backend_bytes),
        "auto-compaction-mode": tuning.auto_compaction_mode,
        "auto-compaction-retention": tuning.auto_compaction_retention,
        "snapshot-count": str(tuning.snapshot_count),
        "pre-vote": "true",
        "logger": "zap",
        "log-level": "info",
    }
    flags.update(_integrity_checks(line))
    return [f"--{name}={value}" for name, value in flags.items()]


# The initial cluster's flags, set through the initial-cluster file as etcd's ETCD_* variables.
INITIAL_CLUSTER_FLAGS = ("initial-cluster", "initial-cluster-state")


def environment_variable(flag: str) -> str:
    """The variable etcd reads a flag from (`initial-cluster` -> ETCD_INITIAL_CLUSTER)."""
    return "ETCD_" + flag.upper().replace("-", "_")


def initial_cluster_environment(founders: Sequence[Member]) -> str:
    """A founding member's initial-cluster file: every founding member's name=peer URL, and
    state `new`. `etcd-member-join` writes the same two variables (state `existing`) for a
    member that joins later."""
    values = {"initial-cluster": initial_cluster(founders), "initial-cluster-state": "new"}
    lines = ["# Read by etcd at this member's first start only (etcd.service EnvironmentFile=)."]
    for flag in INITIAL_CLUSTER_FLAGS:
        value = values[flag]
        # systemd would strip quotes and join continued lines: refuse what needs either.
        if any(char in value for char in " \t\n\"'\\$"):
            raise ValueError(f"{flag} needs quoting in an EnvironmentFile: {value!r}")
        lines.append(f"{environment_variable(flag)}={value}")
    return "\n".join(lines) + "\n"


def _integrity_checks(line: str) -> dict[str, str]:
    """Corruption checks and watch progress: same intent, a different spelling per line."""
    if line in ("3.4", "3.5"):
        return {
            "experimental-initial-corrupt-check": "true",
            "experimental-watch-progress-notify-interval": WATCH_PROGRESS_NOTIFY_INTERVAL,
        }
    if line in ("3.6", "3.7"):
        return {
            "feature-gates": "InitialCorruptCheck=true,CompactHashCheck=true",
            "watch-progress-notify-interval": WATCH_PROGRESS_NOTIFY_INTERVAL,
        }
    raise ValueError(f"no etcd flags for version line {line!r}")
