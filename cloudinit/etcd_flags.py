"""The etcd command line for one member, generated per version line.

Pure: no Pulumi imports. The flags go on the unit's command line rather than into ETCD_*
variables or a config file: etcd refuses an unknown flag at start, while it only warns about an
unknown variable and ignores an unknown config-file key, so a mistake here fails loudly.

What differs between lines (each checked in the tests against the real binary's help for 3.4
and 3.5, and against a flag list read from etcd's source for 3.6 and 3.7):
- 3.4 logs with capnslog unless `--logger=zap`, and has `--pre-vote` off by default.
- 3.4 and 3.5 spell data-integrity checks as `--experimental-*` flags; 3.6 turned them into
  `--feature-gates` (the experimental spellings still parse, deprecated); 3.7 removed them.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.settings import EtcdTuning
from model.topology import CLIENT_PORT, METRICS_PORT, PEER_PORT, Member, Topology


@dataclass(frozen=True)
class EtcdPaths:
    """Where the unit finds its files on a member."""

    pki_dir: str = "/etc/etcd/pki"
    data_dir: str = "/var/lib/etcd/data"
    binary: str = "/usr/local/bin/etcd"

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
        "initial-cluster": topology.initial_cluster,
        "initial-cluster-token": topology.cluster_token,
        "initial-cluster-state": "new",
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
