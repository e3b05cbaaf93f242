"""One etcd cluster's configuration, and the stack settings mapped to it (the one place).

Pure: no Pulumi imports. A stack runs its main cluster and, with `eventsCluster`, an events
cluster beside it (kube-apiserver `--etcd-servers-overrides=/events#...`). Each is a
`ClusterSpec`: what one `EtcdCluster` needs, and nothing of the stack it does not. The stack's
`Settings` stay the single source of configuration; `cluster_specs` is the only code that reads
them to build clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from model import local_network, releases
from model.backup import BackupSpec, MaintenanceSpec, RestoreSpec
from model.rollout import RolloutSpec
from model.settings import (
    Backend,
    EtcdTuning,
    KeyAlgorithm,
    LocalVmSettings,
    Settings,
    resource_prefix,
)
from model.settings.events import EVENTS_SUFFIX
from model.settings.types import LOCAL_BACKENDS, PROJECT

Role = Literal["main", "events"]
# The events cluster is named after the main one (`<cluster>-events`), members `etcd-events-N`.
MEMBER_PREFIX: dict[Role, str] = {"main": "etcd", "events": "etcd-events"}
# Local backends: member N of the main cluster is host 10+N of the network, of the events
# cluster host 20+N, so the two never share an address.
FIRST_MEMBER_HOST: dict[Role, int] = {
    "main": local_network.FIRST_MEMBER_HOST,
    "events": local_network.EVENTS_FIRST_MEMBER_HOST,
}


@dataclass(frozen=True)
class EtcdRelease:
    version: str
    url: str
    sha256: str


@dataclass(frozen=True)
class TlsSpec:
    key_algorithm: KeyAlgorithm
    ca_validity_hours: int
    cert_validity_hours: int
    cert_early_renewal_hours: int
    expiry_warning_days: int


@dataclass(frozen=True)
class AccessSpec:
    """Who may reach the members' ports besides the members themselves (the cloud firewall)."""

    client_source_tags: tuple[str, ...] = ()
    client_source_cidrs: tuple[str, ...] = ()
    monitoring_source_tags: tuple[str, ...] = ()
    monitoring_source_cidrs: tuple[str, ...] = ()
    admin_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class DropletSpec:
    """DigitalOcean machines of one cluster."""

    region: str
    size: str
    image: str
    admin_ssh_keys: tuple[str, ...]
    extra_tags: tuple[str, ...]
    # An existing VPC; None creates one (the events cluster joins the main cluster's).
    vpc_id: str | None
    vpc_ip_range: str | None


@dataclass(frozen=True)
class DnsRecordsSpec:
    """Cloudflare records of the member names."""

    zone_id: str
    ttl: int
    srv_records: bool


@dataclass(frozen=True)
class ClusterSpec:
    # The cluster's own name: in tags, the cluster token and machine names ("main", "main-events").
    name: str
    stack: str
    role: Role
    member_count: int
    # Members are `<member_prefix>-N.<dns_domain>`.
    dns_domain: str
    backend: Backend
    release: EtcdRelease
    tuning: EtcdTuning
    tls: TlsSpec
    access: AccessSpec
    droplets: DropletSpec
    local: LocalVmSettings
    data_volume_size_gib: int
    protect_members: bool
    install_packages: bool
    # None: no DNS records (local backends without a Cloudflare zone).
    dns_records: DnsRecordsSpec | None
    # How `pulumi up` reaches running members for day-2 changes.
    rollout: RolloutSpec
    # Scheduled, encrypted snapshots; None: no backups (an events cluster never has them:
    # Kubernetes events live an hour).
    backup: BackupSpec | None = None
    # The snapshot a new cluster starts from; None: it starts empty.
    restore: RestoreSpec | None = None
    maintenance: MaintenanceSpec = field(default_factory=MaintenanceSpec)

    @property
    def member_prefix(self) -> str:
        return MEMBER_PREFIX[self.role]

    @property
    def first_member_host(self) -> int:
        return FIRST_MEMBER_HOST[self.role]

    @property
    def is_local(self) -> bool:
        """Members run on this machine (QEMU or VirtualBox) with static addresses."""
        return self.backend in LOCAL_BACKENDS

    @property
    def etcd_line(self) -> str:
        """The minor version line ("3.6") that decides which flags etcd accepts."""
        return releases.version_line(self.release.version)

    # Stack and cluster names may both contain '-', so every identifier joins them with a
    # separator neither can contain, or carries a digest of the pair: `prod-eu` + `main` and
    # `prod` + `eu-main` must never share a tag (the firewall admits by tag) or a token.

    @property
    def cluster_tag(self) -> str:
        """The tag that makes a droplet a member: the firewall admits peers by it."""
        return f"etcd:{self.stack}:{self.name}"

    @property
    def cluster_token(self) -> str:
        # Unique per project, stack and cluster: members of two clusters can never join each other.
        return f"{PROJECT}.{self.stack}.{self.name}"

    @property
    def resource_prefix(self) -> str:
        """Readable, unique prefix for machine names (letters, digits and '-' only)."""
        return resource_prefix(self.name, self.stack)


def events_cluster_name(cluster_name: str) -> str:
    return f"{cluster_name}{EVENTS_SUFFIX}"


def main_cluster(settings: Settings) -> ClusterSpec:
    """The stack's main cluster, as the settings describe it."""
    return ClusterSpec(
        name=settings.cluster_name,
        stack=settings.stack,
        role="main",
        member_count=settings.member_count,
        dns_domain=settings.dns_domain,
        backend=settings.backend,
        release=EtcdRelease(
            version=settings.etcd_version,
            url=releases.download_url(settings.etcd_download_url, settings.etcd_version),
            sha256=settings.etcd_sha256,
        ),
        tuning=settings.tuning,
        tls=TlsSpec(
            key_algorithm=settings.key_algorithm,
            ca_validity_hours=settings.ca_validity_hours,
            cert_validity_hours=settings.cert_validity_hours,
            cert_early_renewal_hours=settings.cert_early_renewal_hours,
            expiry_warning_days=settings.cert_expiry_warning_days,
        ),
        access=AccessSpec(
            client_source_tags=settings.client_source_tags,
            client_source_cidrs=settings.client_source_cidrs,
            monitoring_source_tags=settings.monitoring_source_tags,
            monitoring_source_cidrs=settings.monitoring_source_cidrs,
            admin_cidrs=settings.admin_cidrs,
        ),
        droplets=DropletSpec(
            region=settings.region,
            size=settings.droplet_size,
            image=settings.droplet_image,
            admin_ssh_keys=settings.admin_ssh_keys,
            extra_tags=settings.extra_tags,
            vpc_id=settings.vpc_id,
            vpc_ip_range=settings.vpc_ip_range,
        ),
        local=settings.local,
        data_volume_size_gib=settings.data_volume_size_gib,
        protect_members=settings.protect_members,
        install_packages=settings.install_packages,
        dns_records=(DnsRecordsSpec(zone_id=settings.cloudflare_zone_id, ttl=settings.dns_ttl,
                                    srv_records=settings.dns_srv_records)
                     if settings.uses_cloudflare else None),
        rollout=settings.rollout,
        backup=settings.backup,
        restore=settings.restore,
        maintenance=settings.maintenance,
    )


def events_cluster(settings: Settings) -> ClusterSpec | None:
    """The events cluster beside the main one, or None when `eventsCluster` is off.

    It inherits everything from the main cluster but what the `events*` settings change, and
    is neither backed up nor restored (Kubernetes events live an hour; a restored control
    plane's events would be stale); it joins the main cluster's VPC (the events cluster's spec
    says "create one" only when the main one does: `EtcdCluster` hands it the main cluster's
    VPC ID).
    """
    events = settings.events
    if events is None:
        return None
    main = main_cluster(settings)
    return replace(
        main,
        name=events_cluster_name(settings.cluster_name),
        role="events",
        member_count=events.member_count,
        tuning=events.tuning,
        droplets=replace(main.droplets, size=events.droplet_size),
        local=replace(main.local, memory_mib=events.vm_memory_mib),
        data_volume_size_gib=events.data_volume_size_gib,
        backup=None,
        restore=None,
    )


def cluster_specs(settings: Settings) -> tuple[ClusterSpec, ...]:
    """Every cluster of the stack: the main one first."""
    events = events_cluster(settings)
    return (main_cluster(settings),) if events is None else (main_cluster(settings), events)
