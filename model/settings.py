"""Typed, validated stack settings.

Pure: no Pulumi imports. `load_settings` takes the raw configuration (what `pulumi config` holds,
as strings or already-parsed values) and returns `Settings`, or raises `SettingsError` listing
every bad input at once, each naming the setting, the value and the fix. Nothing is created
before this passes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from model import local_network, releases

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

# etcd's documented ceiling for --quota-backend-bytes: above it the backend is not supported.
MAX_QUOTA_BACKEND_BYTES = 8 * 1024**3
# DigitalOcean block volumes: 1 GiB to 16 TiB.
MIN_VOLUME_GIB, MAX_VOLUME_GIB = 1, 16 * 1024

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DO_TAG = re.compile(r"^[A-Za-z0-9:_\-]{1,255}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# DigitalOcean accepts an SSH key by numeric ID or by its MD5 fingerprint.
_SSH_KEY_REF = re.compile(r"^([0-9]+|[0-9a-f]{2}(:[0-9a-f]{2}){15})$")
# Names that end up in interface, VM and file names on the user's machine.
_LOCAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class SettingsError(ValueError):
    """Every bad setting at once, one line each: setting, value, what to do."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{lines}")


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
    extra_tags: tuple[str, ...] = field(default=())
    cert_expiry_warning_days: int = 30
    backend: Backend = "digitalocean"
    install_packages: bool = True
    local: LocalVmSettings = field(default_factory=LocalVmSettings)

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

    # Stack and cluster names may both contain '-', so every identifier joins them with a
    # separator neither can contain, or carries a digest of the pair: `prod-eu` + `main` and
    # `prod` + `eu-main` must never share a tag (the firewall admits by tag) or a token.

    @property
    def cluster_tag(self) -> str:
        """The tag that makes a droplet a member: the firewall admits peers by it."""
        return f"etcd:{self.stack}:{self.cluster_name}"

    @property
    def cluster_token(self) -> str:
        # Unique per project, stack and cluster: members of two clusters can never join each other.
        return f"{PROJECT}.{self.stack}.{self.cluster_name}"

    @property
    def resource_prefix(self) -> str:
        """Readable, unique prefix for DigitalOcean names (letters, digits and '-' only)."""
        return resource_prefix(self.cluster_name, self.stack)

    @property
    def dns_domain(self) -> str:
        """Where member names live: `<subdomain>.<zone>`."""
        return f"{self.dns_subdomain}.{self.dns_zone}"


def resource_prefix(cluster_name: str, stack: str) -> str:
    digest = hashlib.sha256(f"{stack}/{cluster_name}".encode()).hexdigest()[:6]
    return f"etcd-{cluster_name}-{stack}-{digest}"


# --- the schema: one entry per setting, with its default and description -------------------

@dataclass(frozen=True)
class SettingSpec:
    key: str
    description: str
    default: Any
    kind: Literal["str", "int", "bool", "list"]


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("backend", "Where members run: digitalocean (droplets), or qemu / virtualbox (VMs on this machine through pulumi-command; no cloud account).", "digitalocean", "str"),
    SettingSpec("clusterName", "Cluster name; a DNS label used in member FQDNs, tags and the cluster token. Defaults to the stack name.", None, "str"),
    SettingSpec("memberCount", "Number of etcd members: 1, 3, 5 or 7 (odd, for quorum).", 3, "int"),
    SettingSpec("region", "DigitalOcean region slug for droplets, volumes and the VPC.", "nyc3", "str"),
    SettingSpec("dropletSize", "DigitalOcean droplet size slug (etcd wants dedicated CPU and fast disk in production).", "s-2vcpu-4gb", "str"),
    SettingSpec("dropletImage", "DigitalOcean image slug; the user-data targets Debian 12 and Ubuntu 22.04/24.04.", "debian-12-x64", "str"),
    SettingSpec("vpcId", "Existing VPC UUID to place members in (the Kubernetes control plane must reach it); empty creates a VPC.", None, "str"),
    SettingSpec("vpcIpRange", "CIDR for the VPC this program creates; empty lets DigitalOcean choose.", None, "str"),
    SettingSpec("etcdVersion", "etcd release to install (3.4.x, 3.5.x, 3.6.x or 3.7.x); flags are generated for its line.", releases.DEFAULT_VERSION, "str"),
    SettingSpec("etcdDownloadUrl", "URL of the etcd release tarball; `{version}` is replaced. Set it for mirrors and air-gapped sites.", releases.DEFAULT_DOWNLOAD_URL, "str"),
    SettingSpec("etcdSha256", "SHA-256 of the tarball; required for a version or URL whose checksum is not built in.", None, "str"),
    SettingSpec("dnsZone", "Cloudflare zone (domain) the member records live in, e.g. example.com. Required.", None, "str"),
    SettingSpec("cloudflareZoneId", "Cloudflare zone ID of dnsZone (32 hex characters). Required on digitalocean; on qemu/virtualbox records are created only when it is set.", None, "str"),
    SettingSpec("dnsSubdomain", "Subdomain under dnsZone for member names (etcd-N.<subdomain>.<zone>); defaults to clusterName.", None, "str"),
    SettingSpec("dnsTtl", "TTL in seconds of member A records (60-86400); short so a replaced member is found quickly.", 60, "int"),
    SettingSpec("dnsSrvRecords", "Also publish _etcd-server-ssl/_etcd-client-ssl SRV records for DNS discovery.", False, "bool"),
    SettingSpec("clientSourceTags", "Droplet tags allowed to reach the client port 2379 (kube-apiserver nodes).", ["k8s-control-plane"], "list"),
    SettingSpec("clientSourceCidrs", "CIDRs allowed to reach the client port 2379.", [], "list"),
    SettingSpec("monitoringSourceTags", "Droplet tags allowed to scrape metrics on port 2381.", [], "list"),
    SettingSpec("monitoringSourceCidrs", "CIDRs allowed to scrape metrics on port 2381.", [], "list"),
    SettingSpec("adminSshKeys", "DigitalOcean SSH key IDs or fingerprints installed for root.", [], "list"),
    SettingSpec("adminCidrs", "CIDRs allowed to reach SSH (22); empty closes SSH in the firewall.", [], "list"),
    SettingSpec("dataVolumeSizeGib", "Size of each member's data block volume in GiB.", 20, "int"),
    SettingSpec("heartbeatIntervalMs", "etcd --heartbeat-interval in ms (upstream default 100; about the round trip between members).", 100, "int"),
    SettingSpec("electionTimeoutMs", "etcd --election-timeout in ms (upstream default 1000; at least 5x the heartbeat).", 1000, "int"),
    SettingSpec("quotaBackendBytes", "etcd --quota-backend-bytes (default 2 GiB; at most 8 GiB).", 2 * 1024**3, "int"),
    SettingSpec("autoCompactionMode", "etcd --auto-compaction-mode: periodic or revision.", "periodic", "str"),
    SettingSpec("autoCompactionRetention", "etcd --auto-compaction-retention: a duration (8h) for periodic, a count for revision.", "8h", "str"),
    SettingSpec("snapshotCount", "etcd --snapshot-count: applied entries between snapshots (upstream 3.6 default 10000).", 10000, "int"),
    SettingSpec("keyAlgorithm", "Key algorithm for every key: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096.", "ecdsa-p256", "str"),
    SettingSpec("caValidityHours", "Validity of the two CAs in hours (default 10 years).", 87600, "int"),
    SettingSpec("certValidityHours", "Validity of member and client certificates in hours (default 1 year).", 8760, "int"),
    SettingSpec("certEarlyRenewalHours", "Renew (re-issue) certificates this many hours before expiry (default 30 days).", 720, "int"),
    SettingSpec("certExpiryWarningDays", "Warn at preview when a certificate expires within this many days (0: never).", 30, "int"),
    SettingSpec("protectMembers", "Mark droplets and volumes `protect` so no update can delete or replace them.", True, "bool"),
    SettingSpec("extraTags", "Extra DigitalOcean tags added to every droplet.", [], "list"),
    SettingSpec("installPackages", "Install curl, ca-certificates and nftables with apt at first boot; false for images that already have them (offline local images).", True, "bool"),
    SettingSpec("localNetworkCidr", "qemu/virtualbox: the members' private network; its first address is the host (gateway), member N gets host address 10+N.", "192.168.56.0/24", "str"),
    SettingSpec("localNameservers", "qemu/virtualbox: DNS servers for the VMs (downloads); member names resolve from /etc/hosts.", [], "list"),
    SettingSpec("vmCpus", "qemu/virtualbox: virtual CPUs per member.", 2, "int"),
    SettingSpec("vmMemoryMib", "qemu/virtualbox: memory per member in MiB.", 2048, "int"),
    SettingSpec("vmBootTimeoutSeconds", "qemu/virtualbox: how long creating a VM waits for cloud-init to finish in it.", 1200, "int"),
    SettingSpec("localStateDir", "qemu/virtualbox: directory for VM disks, seeds and console logs (relative to the project).", ".local/vms", "str"),
    SettingSpec("qemuImageDir", "qemu: directory with the base image (disk.img, optional vmlinuz, initrd.img, cmdline); `machines/build-local-image` makes one.", ".local/image", "str"),
    SettingSpec("qemuBridge", "qemu: host bridge the VMs' NICs join (its address is the gateway); `sudo machines/qemu/setup-network` creates it.", "etcdbr0", "str"),
    SettingSpec("qemuAccel", "qemu: auto (KVM when a guest really boots under it, else software emulation), kvm or tcg.", "auto", "str"),
    SettingSpec("virtualboxBaseVm", "virtualbox: the VM to clone for each member (a cloud image with cloud-init, powered off).", "debian-12-cloud", "str"),
    SettingSpec("virtualboxHostOnlyAdapter", "virtualbox: host-only adapter of the members' network (its address is the gateway).", "vboxnet0", "str"),
    SettingSpec("virtualboxStorageController", "virtualbox: name of the base VM's SATA controller, where the data disk and seed ISO are attached.", "SATA", "str"),
)
SPEC_BY_KEY = {spec.key: spec for spec in SPECS}


# --- parsing ------------------------------------------------------------------------------

def _setting(key: str) -> str:
    return f"{PROJECT}:{key}"


class _Collector:
    """Reads raw values into typed ones, recording every problem instead of stopping at one."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        unknown = sorted(set(raw) - set(SPEC_BY_KEY))
        self.raw = raw
        self.problems: list[str] = [
            f"{_setting(key)} is not a setting of this program; known settings: "
            f"{', '.join(sorted(SPEC_BY_KEY))}. Remove it or fix its spelling."
            for key in unknown
        ]

    def problem(self, key: str, value: Any, message: str) -> None:
        self.problems.append(f"{_setting(key)} = {value!r}: {message}")

    def value(self, key: str) -> Any:
        spec = SPEC_BY_KEY[key]
        value = self.raw.get(key)
        if value is None or value == "":
            return spec.default
        parse: Callable[[str, Any], Any] = {
            "str": self._str,
            "int": self._int,
            "bool": self._bool,
            "list": self._list,
        }[spec.kind]
        return parse(key, value)

    def _str(self, key: str, value: Any) -> Any:
        if not isinstance(value, str):
            self.problem(key, value, "must be a string.")
            return SPEC_BY_KEY[key].default
        return value.strip()

    def _int(self, key: str, value: Any) -> Any:
        if isinstance(value, bool):
            self.problem(key, value, "must be a whole number.")
            return SPEC_BY_KEY[key].default
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            self.problem(key, value, "must be a whole number, e.g. `pulumi config set "
                         f"{key} {SPEC_BY_KEY[key].default}`.")
            return SPEC_BY_KEY[key].default

    def _bool(self, key: str, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        self.problem(key, value, "must be true or false.")
        return SPEC_BY_KEY[key].default

    def _list(self, key: str, value: Any) -> Any:
        # `pulumi config set --path 'key[0]' x` stores a list; a plain string may hold JSON.
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                self.problem(key, value, f"must be a list, e.g. `pulumi config set --path '{key}[0]' VALUE`.")
                return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, value, "must be a list of strings.")
            return []
        return [item.strip() for item in value]


def _check_dns_label(c: _Collector, key: str, value: str, what: str) -> None:
    if not _DNS_LABEL.match(value):
        c.problem(key, value, f"{what} must be a DNS label: 1-63 lowercase letters, digits and "
                  "hyphens, starting and ending with a letter or digit (e.g. `prod-etcd`).")


_PORT_OF = {
    "clientSourceCidrs": "the etcd client port 2379",
    "monitoringSourceCidrs": "the plain-HTTP metrics port 2381",
    "adminCidrs": "SSH",
    "vpcIpRange": "the VPC",
}


def _check_cidrs(c: _Collector, key: str, values: list[str]) -> list[str]:
    good: list[str] = []
    for value in values:
        try:
            good.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError as error:
            c.problem(key, value, f"is not a valid CIDR ({error}); write a network address with "
                      "a prefix length, e.g. 10.10.0.0/16 or 203.0.113.7/32.")
            continue
        if ipaddress.ip_network(value).prefixlen == 0:
            c.problem(key, value, f"opens {_PORT_OF[key]} to the whole internet; list the "
                      "networks that need it instead.")
    return good


def _check_tags(c: _Collector, key: str, values: list[str]) -> None:
    for value in values:
        if not _DO_TAG.match(value):
            c.problem(key, value, "is not a valid DigitalOcean tag: use letters, digits, "
                      "':', '-' and '_' (1-255 characters).")


def _check_range(c: _Collector, key: str, value: int, low: int, high: int, why: str) -> None:
    if not low <= value <= high:
        c.problem(key, value, f"must be between {low} and {high}; {why}")


def load_settings(raw: Mapping[str, Any], stack: str) -> Settings:
    """Parse and validate the raw stack configuration. Raises SettingsError listing all problems."""
    c = _Collector(raw)

    backend = c.value("backend")
    if backend not in BACKENDS:
        c.problem("backend", backend, f"must be one of {', '.join(BACKENDS)}: digitalocean for "
                  "droplets, qemu or virtualbox for VMs on this machine.")
    cluster_name = c.value("clusterName") or stack
    _check_dns_label(c, "clusterName", cluster_name, "the cluster name")
    if not _DNS_LABEL.match(stack):
        c.problems.append(f"stack name {stack!r}: the stack name is part of DNS names and tags and "
                          "must be a DNS label (lowercase letters, digits, hyphens); "
                          "rename it with `pulumi stack rename`.")

    member_count = c.value("memberCount")
    if member_count not in (1, 3, 5, 7):
        c.problem("memberCount", member_count,
                  "etcd needs a majority (quorum) of members to accept writes; an even count "
                  "adds no fault tolerance over the odd count below it (4 members, like 3, "
                  "survive only 1 failure) and more than 7 slows every write. Use 3 (tolerates 1 "
                  "failure), 5 (tolerates 2) or 7 (tolerates 3); 1 only for throwaway tests.")

    etcd_version = c.value("etcdVersion")
    etcd_line = None
    try:
        etcd_line = releases.version_line(etcd_version)
    except releases.VersionError as error:
        c.problem("etcdVersion", etcd_version, str(error))

    download_url = c.value("etcdDownloadUrl")
    if not download_url.startswith(("https://", "http://")):
        c.problem("etcdDownloadUrl", download_url,
                  "must be an http(s) URL of the release tarball, e.g. "
                  f"{releases.DEFAULT_DOWNLOAD_URL}.")
    etcd_sha256 = (c.value("etcdSha256") or "").lower()
    if etcd_sha256 and not _SHA256.match(etcd_sha256):
        c.problem("etcdSha256", etcd_sha256, "must be 64 hexadecimal characters (the output of "
                  "`sha256sum etcd-vX.Y.Z-linux-amd64.tar.gz`).")
    if not etcd_sha256 and etcd_line is not None:
        known = releases.known_sha256(etcd_version)
        if known is None:
            c.problem("etcdVersion", etcd_version,
                      "has no built-in checksum; set etcdSha256 to the SHA-256 of "
                      f"etcd-v{etcd_version}-linux-amd64.tar.gz (built in: "
                      f"{', '.join(releases.KNOWN_VERSIONS)}).")
        elif "{version}" not in download_url and download_url.startswith(("https://", "http://")):
            # A fixed URL may point at any file: the built-in checksum would be a guess.
            c.problem("etcdSha256", None, "is required when etcdDownloadUrl names a fixed file "
                      "(no `{version}` in it); set it to the file's SHA-256.")
        else:
            etcd_sha256 = known

    dns_zone = (c.value("dnsZone") or "").lower().rstrip(".")
    if not dns_zone:
        c.problem("dnsZone", None, "is required: the Cloudflare zone for member records, e.g. "
                  "`pulumi config set dnsZone example.com`.")
    else:
        labels = dns_zone.split(".")
        if len(labels) < 2 or not all(_DNS_LABEL.match(label) for label in labels):
            c.problem("dnsZone", dns_zone, "must be a domain name of DNS labels, e.g. example.com.")
    zone_id = (c.value("cloudflareZoneId") or "").lower()
    if not zone_id and backend not in LOCAL_BACKENDS:
        c.problem("cloudflareZoneId", None, "is required: the 32-character zone ID from the "
                  "Cloudflare dashboard (zone Overview page, API section).")
    elif zone_id and not _HEX32.match(zone_id):
        c.problem("cloudflareZoneId", zone_id, "must be 32 hexadecimal characters (zone Overview "
                  "page of the Cloudflare dashboard).")
    dns_subdomain = c.value("dnsSubdomain") or cluster_name
    if c.value("dnsSubdomain"):  # the default is the cluster name, checked above
        for label in dns_subdomain.split("."):
            _check_dns_label(c, "dnsSubdomain", label, "each part of the subdomain")
    longest_fqdn = f"etcd-7.{dns_subdomain}.{dns_zone}"
    if len(longest_fqdn) > 253:
        c.problem("dnsSubdomain", dns_subdomain, f"makes member names such as {longest_fqdn[:40]}... "
                  "longer than the 253 characters DNS allows; use a shorter subdomain or zone.")
    # Volume names (`<resource prefix>-<n>`) are limited to 64 characters by DigitalOcean.
    longest_volume = f"{resource_prefix(cluster_name, stack)}-7"
    if _DNS_LABEL.match(cluster_name) and len(longest_volume) > 64:
        c.problem("clusterName", cluster_name, f"with stack {stack!r} makes DigitalOcean volume "
                  "names longer than 64 characters; use a cluster name of at most "
                  f"{64 - len(longest_volume) + len(cluster_name)} characters.")
    dns_ttl = c.value("dnsTtl")
    if dns_ttl != 1:  # Cloudflare's 1 means "automatic"
        _check_range(c, "dnsTtl", dns_ttl, 60, 86400,
                     "Cloudflare accepts 60-86400 seconds (or 1 for automatic).")

    region = c.value("region")
    _check_dns_label(c, "region", region, "the region slug (e.g. nyc3, fra1)")

    client_source_tags = c.value("clientSourceTags")
    client_source_cidrs = _check_cidrs(c, "clientSourceCidrs", c.value("clientSourceCidrs"))
    monitoring_source_tags = c.value("monitoringSourceTags")
    monitoring_source_cidrs = _check_cidrs(c, "monitoringSourceCidrs", c.value("monitoringSourceCidrs"))
    admin_cidrs = _check_cidrs(c, "adminCidrs", c.value("adminCidrs"))
    extra_tags = c.value("extraTags")
    for key, tags in (("clientSourceTags", client_source_tags),
                      ("monitoringSourceTags", monitoring_source_tags), ("extraTags", extra_tags)):
        _check_tags(c, key, tags)
    vpc_id = c.value("vpcId")
    if vpc_id and not _UUID.match(vpc_id):
        c.problem("vpcId", vpc_id, "must be a VPC UUID (`doctl vpcs list`), or empty to create a VPC.")
    admin_ssh_keys = c.value("adminSshKeys")
    for key in admin_ssh_keys:
        if not _SSH_KEY_REF.match(key):
            c.problem("adminSshKeys", key, "must be a DigitalOcean SSH key ID or MD5 fingerprint "
                      "(`doctl compute ssh-key list`).")
    droplet_size = c.value("dropletSize")
    droplet_image = c.value("dropletImage")
    for key, value in (("dropletSize", droplet_size), ("dropletImage", droplet_image)):
        if not value:
            c.problem(key, c.raw.get(key), "must not be empty.")
    vpc_ip_range = c.value("vpcIpRange")
    if vpc_ip_range:
        ranges = _check_cidrs(c, "vpcIpRange", [vpc_ip_range])
        if ranges and not ipaddress.ip_network(ranges[0]).is_private:
            c.problem("vpcIpRange", vpc_ip_range, "must be a private range (10.0.0.0/8, "
                      "172.16.0.0/12 or 192.168.0.0/16).")

    data_volume_size_gib = c.value("dataVolumeSizeGib")
    _check_range(c, "dataVolumeSizeGib", data_volume_size_gib, MIN_VOLUME_GIB, MAX_VOLUME_GIB,
                 "DigitalOcean volumes are 1 GiB to 16 TiB.")

    heartbeat = c.value("heartbeatIntervalMs")
    election = c.value("electionTimeoutMs")
    _check_range(c, "heartbeatIntervalMs", heartbeat, 10, 5000,
                 "set it near the round-trip time between members (upstream default 100).")
    _check_range(c, "electionTimeoutMs", election, 50, 50000,
                 "etcd refuses election timeouts above 50000 ms.")
    if election < 5 * heartbeat:
        c.problem("electionTimeoutMs", election,
                  f"must be at least 5x heartbeatIntervalMs ({heartbeat} ms, so at least "
                  f"{5 * heartbeat} ms); a shorter timeout makes followers start elections on "
                  "ordinary latency. Upstream recommends 10x (heartbeat 100, election 1000).")
    quota = c.value("quotaBackendBytes")
    if quota > MAX_QUOTA_BACKEND_BYTES:
        c.problem("quotaBackendBytes", quota,
                  f"is above 8 GiB ({MAX_QUOTA_BACKEND_BYTES}), the largest backend etcd "
                  "supports; use at most 8589934592 and compact/defragment instead.")
    elif quota < 0:
        c.problem("quotaBackendBytes", quota, "must be 0 (etcd's default, 2 GiB) or a positive size.")
    compaction_mode = c.value("autoCompactionMode")
    if compaction_mode not in AUTO_COMPACTION_MODES:
        c.problem("autoCompactionMode", compaction_mode, "must be `periodic` or `revision`.")
    retention = c.value("autoCompactionRetention")
    if compaction_mode == "periodic" and not (_DURATION.match(retention) or retention.isdigit()):
        c.problem("autoCompactionRetention", retention,
                  "for periodic compaction give a duration such as 8h or 30m (a bare number "
                  "means hours).")
    if compaction_mode == "revision" and not retention.isdigit():
        c.problem("autoCompactionRetention", retention,
                  "for revision compaction give a number of revisions, e.g. 10000.")
    snapshot_count = c.value("snapshotCount")
    _check_range(c, "snapshotCount", snapshot_count, 100, 10_000_000,
                 "upstream default is 10000 (3.6) / 100000 (3.4, 3.5).")

    key_algorithm = c.value("keyAlgorithm")
    if key_algorithm not in KEY_ALGORITHMS:
        c.problem("keyAlgorithm", key_algorithm, f"must be one of {', '.join(KEY_ALGORITHMS)} "
                  "(ecdsa-p256 is the default and what kubeadm uses for etcd).")
        key_algorithm = "ecdsa-p256"

    ca_validity = c.value("caValidityHours")
    cert_validity = c.value("certValidityHours")
    early_renewal = c.value("certEarlyRenewalHours")
    _check_range(c, "certValidityHours", cert_validity, 24, 10 * 8760,
                 "member and client certificates live from 1 day to 10 years.")
    _check_range(c, "caValidityHours", ca_validity, cert_validity, 30 * 8760,
                 "a CA must outlive the certificates it signs (certValidityHours) and at most 30 years.")
    _check_range(c, "certEarlyRenewalHours", early_renewal, 0, max(cert_validity - 1, 0),
                 "renewal must start before the certificate expires.")
    expiry_warning_days = c.value("certExpiryWarningDays")
    _check_range(c, "certExpiryWarningDays", expiry_warning_days, 0, 3650,
                 "days before a certificate's expiry that preview starts warning (0 turns it off).")

    dns_srv_records = c.value("dnsSrvRecords")
    protect_members = c.value("protectMembers")
    install_packages = c.value("installPackages")
    local = _local_vm_settings(c)

    if c.problems:
        raise SettingsError(c.problems)

    tuning = EtcdTuning(
        heartbeat_interval_ms=heartbeat,
        election_timeout_ms=election,
        quota_backend_bytes=quota,
        auto_compaction_mode=compaction_mode,
        auto_compaction_retention=retention,
        snapshot_count=snapshot_count,
    )
    return Settings(
        cluster_name=cluster_name,
        stack=stack,
        member_count=member_count,
        region=region,
        droplet_size=droplet_size,
        droplet_image=droplet_image,
        vpc_id=vpc_id,
        vpc_ip_range=vpc_ip_range,
        etcd_version=etcd_version,
        etcd_download_url=download_url,
        etcd_sha256=etcd_sha256,
        dns_zone=dns_zone,
        cloudflare_zone_id=zone_id,
        dns_subdomain=dns_subdomain,
        dns_ttl=dns_ttl,
        dns_srv_records=dns_srv_records,
        client_source_tags=tuple(client_source_tags),
        client_source_cidrs=tuple(client_source_cidrs),
        monitoring_source_tags=tuple(monitoring_source_tags),
        monitoring_source_cidrs=tuple(monitoring_source_cidrs),
        admin_ssh_keys=tuple(admin_ssh_keys),
        admin_cidrs=tuple(admin_cidrs),
        data_volume_size_gib=data_volume_size_gib,
        tuning=tuning,
        key_algorithm=key_algorithm,
        ca_validity_hours=ca_validity,
        cert_validity_hours=cert_validity,
        cert_early_renewal_hours=early_renewal,
        protect_members=protect_members,
        extra_tags=tuple(extra_tags),
        cert_expiry_warning_days=expiry_warning_days,
        backend=backend,
        install_packages=install_packages,
        local=local,
    )


def _local_vm_settings(c: _Collector) -> LocalVmSettings:
    """The qemu/virtualbox settings; checked whatever the backend, so a typo never waits."""
    network_cidr = c.value("localNetworkCidr")
    try:
        network = ipaddress.ip_network(network_cidr, strict=True)
    except ValueError as error:
        c.problem("localNetworkCidr", network_cidr, f"is not a valid CIDR ({error}); write a "
                  "private network address with a prefix length, e.g. 192.168.56.0/24.")
    else:
        if network.version != 4 or not network.is_private:
            c.problem("localNetworkCidr", network_cidr, "must be a private IPv4 network "
                      "(10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16), e.g. 192.168.56.0/24.")
        elif network.num_addresses < local_network.MIN_HOSTS + 1:
            c.problem("localNetworkCidr", network_cidr, "is too small: the gateway is host 1 and "
                      f"members are hosts {local_network.FIRST_MEMBER_HOST + 1}-"
                      f"{local_network.FIRST_MEMBER_HOST + local_network.MAX_MEMBERS}; use a /27 "
                      "or larger, e.g. 192.168.56.0/24.")
    nameservers = c.value("localNameservers")
    for nameserver in nameservers:
        try:
            ipaddress.ip_address(nameserver)
        except ValueError:
            c.problem("localNameservers", nameserver, "must be an IP address, e.g. 192.168.56.1.")
    cpus = c.value("vmCpus")
    _check_range(c, "vmCpus", cpus, 1, 64, "virtual CPUs per member.")
    memory_mib = c.value("vmMemoryMib")
    _check_range(c, "vmMemoryMib", memory_mib, 512, 262144,
                 "etcd and the guest system need at least 512 MiB; 1024 or more is comfortable.")
    boot_timeout = c.value("vmBootTimeoutSeconds")
    _check_range(c, "vmBootTimeoutSeconds", boot_timeout, 60, 7200,
                 "software-emulated VMs take several minutes to finish cloud-init.")
    names = {key: c.value(key) for key in (
        "qemuBridge", "virtualboxBaseVm", "virtualboxHostOnlyAdapter", "virtualboxStorageController")}
    for key, value in names.items():
        if not _LOCAL_NAME.match(value):
            c.problem(key, value, "must be a name of letters, digits, '.', '_' and '-' (at most "
                      "63 characters).")
    if len(names["qemuBridge"]) > 15:
        c.problem("qemuBridge", names["qemuBridge"], "is longer than the 15 characters Linux "
                  "allows for an interface name.")
    qemu_accel = c.value("qemuAccel")
    if qemu_accel not in QEMU_ACCELS:
        c.problem("qemuAccel", qemu_accel, f"must be one of {', '.join(QEMU_ACCELS)} (auto tries "
                  "KVM and falls back to software emulation).")
        qemu_accel = "auto"
    directories = {key: c.value(key) for key in ("localStateDir", "qemuImageDir")}
    for key, value in directories.items():
        if not value or "\n" in value:
            c.problem(key, value, "must be a directory path.")
    return LocalVmSettings(
        network_cidr=network_cidr,
        nameservers=tuple(nameservers),
        cpus=cpus,
        memory_mib=memory_mib,
        boot_timeout_seconds=boot_timeout,
        state_dir=directories["localStateDir"],
        qemu_image_dir=directories["qemuImageDir"],
        qemu_bridge=names["qemuBridge"],
        qemu_accel=qemu_accel,
        virtualbox_base_vm=names["virtualboxBaseVm"],
        virtualbox_hostonly_adapter=names["virtualboxHostOnlyAdapter"],
        virtualbox_storage_controller=names["virtualboxStorageController"],
    )
