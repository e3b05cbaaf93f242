"""The typed settings: what the rest of the program reads, every value already validated.

Defaults here repeat the schema's (`schema.SPECS`) so the model can be built in tests without a
stack configuration; tests/test_settings.py keeps the two equal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from model import releases
from model.backup import BackupSpec, MaintenanceSpec, RestoreSpec
from model.rollout import RolloutSpec

PROJECT = "etcd-cluster"

KeyAlgorithm = Literal["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
KEY_ALGORITHMS: tuple[KeyAlgorithm, ...] = (
    "ecdsa-p256",
    "ecdsa-p384",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
)
AUTO_COMPACTION_MODES = ("periodic", "revision")

Backend = Literal["digitalocean", "qemu", "virtualbox"]
BACKENDS: tuple[Backend, ...] = ("digitalocean", "qemu", "virtualbox")
LOCAL_BACKENDS: tuple[Backend, ...] = ("qemu", "virtualbox")
QemuAccel = Literal["auto", "kvm", "tcg"]
QEMU_ACCELS: tuple[QemuAccel, ...] = ("auto", "kvm", "tcg")


@dataclass(frozen=True)
class EtcdTuning:
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    quota_backend_bytes: int = 2 * 1024**3
    auto_compaction_mode: str = "periodic"
    auto_compaction_retention: str = "8h"
    snapshot_count: int = 10000


@dataclass(frozen=True)
class LocalVmSettings:
    """Settings of the local backends (QEMU, VirtualBox); see Pulumi.yaml for each."""

    network_cidr: str = "192.168.56.0/24"
    nameservers: tuple[str, ...] = ()
    cpus: int = 2
    memory_mib: int = 2048
    boot_timeout_seconds: int = 1200
    state_dir: str = ".local/vms"
    qemu_image_dir: str = ".local/image"
    qemu_bridge: str = "etcdbr0"
    qemu_accel: QemuAccel = "auto"
    virtualbox_base_vm: str = "debian-12-cloud"
    virtualbox_hostonly_adapter: str = "vboxnet0"
    virtualbox_storage_controller: str = "SATA"


@dataclass(frozen=True)
class EventsSettings:
    """The events cluster's own sizes and tuning (each defaults to the main cluster's)."""

    member_count: int
    droplet_size: str
    data_volume_size_gib: int
    vm_memory_mib: int
    tuning: EtcdTuning


@dataclass(frozen=True)
class Settings:
    cluster_name: str
    stack: str
    member_count: int
    region: str
    droplet_size: str
    droplet_image: str
    vpc_id: str | None
    vpc_ip_range: str | None
    etcd_version: str
    etcd_download_url: str
    etcd_sha256: str
    dns_zone: str
    cloudflare_zone_id: str
    dns_subdomain: str
    dns_ttl: int
    dns_srv_records: bool
    client_source_tags: tuple[str, ...]
    client_source_cidrs: tuple[str, ...]
    monitoring_source_tags: tuple[str, ...]
    monitoring_source_cidrs: tuple[str, ...]
    admin_ssh_keys: tuple[str, ...]
    admin_cidrs: tuple[str, ...]
    data_volume_size_gib: int
    tuning: EtcdTuning
    key_algorithm: KeyAlgorithm
    ca_validity_hours: int
    cert_validity_hours: int
    cert_early_renewal_hours: int
    protect_members: bool
    # None: no events cluster (`eventsCluster` false).
    events: EventsSettings | None
    rollout: RolloutSpec
    extra_tags: tuple[str, ...] = field(default=())
    cert_expiry_warning_days: int = 30
    backend: Backend = "digitalocean"
    install_packages: bool = True
    local: LocalVmSettings = field(default_factory=LocalVmSettings)
    # None: no backups (`backupBucket` unset).
    backup: BackupSpec | None = None
    # None: the cluster starts empty (`restoreFrom` unset).
    restore: RestoreSpec | None = None
    maintenance: MaintenanceSpec = field(default_factory=MaintenanceSpec)

    @property
    def is_local(self) -> bool:
        """Members run on this machine (QEMU or VirtualBox) with static addresses."""
        return self.backend in LOCAL_BACKENDS

    @property
    def uses_cloudflare(self) -> bool:
        """DNS records are created: always on DigitalOcean, when a zone ID is set locally."""
        return not self.is_local or bool(self.cloudflare_zone_id)

    @property
    def etcd_line(self) -> str:
        """The minor version line ("3.6") that decides which flags etcd accepts."""
        return releases.version_line(self.etcd_version)

    @property
    def dns_domain(self) -> str:
        """Where member names live: `<subdomain>.<zone>`."""
        return f"{self.dns_subdomain}.{self.dns_zone}"


def resource_prefix(cluster_name: str, stack: str) -> str:
    """Readable, unique prefix for machine names (letters, digits and '-' only)."""
    digest = hashlib.sha256(f"{stack}/{cluster_name}".encode()).hexdigest()[:6]
    return f"etcd-{cluster_name}-{stack}-{digest}"
