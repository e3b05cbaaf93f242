"""The schema: one entry per setting, with its type, default and description, grouped by concern.

Pulumi.yaml declares the same settings in the same order and groups, and the README's
configuration reference has a table per group (tests/test_project_file.py keeps all three equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from model import backup, releases


@dataclass(frozen=True)
class SettingSpec:
    key: str
    description: str
    default: Any
    kind: Literal["str", "int", "bool", "list"]
    # A credential or key: never shown in a message. (Pulumi.yaml cannot say `secret: true`:
    # the CLI would then refuse its empty default as a plain value on every stack; the program
    # refuses a plain value itself.)
    secret: bool = False


@dataclass(frozen=True)
class SettingGroup:
    title: str
    specs: tuple[SettingSpec, ...]


GROUPS: tuple[SettingGroup, ...] = (
    # cluster: what runs where
    SettingGroup("cluster", (
        SettingSpec("backend", "Where members run: digitalocean (droplets), or qemu / virtualbox (VMs on this machine through pulumi-command; no cloud account).", "digitalocean", "str"),
        SettingSpec("clusterName", "Cluster name; a DNS label used in member FQDNs, tags and the cluster token. Defaults to the stack name.", None, "str"),
        SettingSpec("memberCount", "Number of etcd members: 1, 3, 5 or 7 (odd, for quorum).", 3, "int"),
    )),
    # etcd release: what members install
    SettingGroup("etcd release", (
        SettingSpec("etcdVersion", "etcd release to install (3.4.x, 3.5.x, 3.6.x or 3.7.x); flags are generated for its line.", releases.DEFAULT_VERSION, "str"),
        SettingSpec("etcdDownloadUrl", "URL of the etcd release tarball; `{version}` is replaced. Set it for mirrors and air-gapped sites.", releases.DEFAULT_DOWNLOAD_URL, "str"),
        SettingSpec("etcdSha256", "SHA-256 of the tarball; required for a version or URL whose checksum is not built in.", None, "str"),
        SettingSpec("installPackages", "Install curl, ca-certificates, nftables and openssl (and rclone with backups) with apt at first boot; false for images that already have them (offline local images).", True, "bool"),
    )),
    # etcd tuning: etcd's own flags
    SettingGroup("etcd tuning", (
        SettingSpec("heartbeatIntervalMs", "etcd --heartbeat-interval in ms (upstream default 100; about the round trip between members).", 100, "int"),
        SettingSpec("electionTimeoutMs", "etcd --election-timeout in ms (upstream default 1000; at least 5x the heartbeat).", 1000, "int"),
        SettingSpec("quotaBackendBytes", "etcd --quota-backend-bytes (default 2 GiB; at most 8 GiB).", 2 * 1024**3, "int"),
        SettingSpec("autoCompactionMode", "etcd --auto-compaction-mode: periodic or revision.", "periodic", "str"),
        SettingSpec("autoCompactionRetention", "etcd --auto-compaction-retention: a duration (8h) for periodic, a count for revision.", "8h", "str"),
        SettingSpec("snapshotCount", "etcd --snapshot-count: applied entries between snapshots (upstream 3.6 default 10000).", 10000, "int"),
    )),
    # TLS: keys and certificates
    SettingGroup("TLS", (
        SettingSpec("keyAlgorithm", "Key algorithm for every key: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096.", "ecdsa-p256", "str"),
        SettingSpec("caValidityHours", "Validity of the two CAs in hours (default 10 years).", 87600, "int"),
        SettingSpec("certValidityHours", "Validity of member and client certificates in hours (default 1 year).", 8760, "int"),
        SettingSpec("certEarlyRenewalHours", "Renew (re-issue) certificates this many hours before expiry (default 30 days).", 720, "int"),
        SettingSpec("certExpiryWarningDays", "Warn at preview when a certificate expires within this many days (0: never).", 30, "int"),
    )),
    # DNS: Cloudflare records of the member names
    SettingGroup("DNS", (
        SettingSpec("dnsZone", "Cloudflare zone (domain) the member records live in, e.g. example.com. Required.", None, "str"),
        SettingSpec("cloudflareZoneId", "Cloudflare zone ID of dnsZone (32 hex characters). Required on digitalocean; on qemu/virtualbox records are created only when it is set.", None, "str"),
        SettingSpec("dnsSubdomain", "Subdomain under dnsZone for member names (etcd-N.<subdomain>.<zone>); defaults to clusterName.", None, "str"),
        SettingSpec("dnsTtl", "TTL in seconds of member A records (60-86400); short so a replaced member is found quickly.", 60, "int"),
        SettingSpec("dnsSrvRecords", "Also publish _etcd-server-ssl/_etcd-client-ssl SRV records for DNS discovery.", False, "bool"),
    )),
    # access: who may reach the members (the cloud firewall)
    SettingGroup("access", (
        SettingSpec("clientSourceTags", "Droplet tags allowed to reach the client port 2379 (kube-apiserver nodes).", ["k8s-control-plane"], "list"),
        SettingSpec("clientSourceCidrs", "CIDRs allowed to reach the client port 2379.", [], "list"),
        SettingSpec("monitoringSourceTags", "Droplet tags allowed to scrape metrics on port 2381.", [], "list"),
        SettingSpec("monitoringSourceCidrs", "CIDRs allowed to scrape metrics on port 2381.", [], "list"),
        SettingSpec("adminSshKeys", "DigitalOcean SSH key IDs or fingerprints installed for root.", [], "list"),
        SettingSpec("adminCidrs", "CIDRs allowed to reach SSH (22); empty closes SSH in the firewall.", [], "list"),
    )),
    # DigitalOcean: droplets, volumes, VPC
    SettingGroup("DigitalOcean", (
        SettingSpec("region", "DigitalOcean region slug for droplets, volumes and the VPC.", "nyc3", "str"),
        SettingSpec("dropletSize", "DigitalOcean droplet size slug (etcd wants dedicated CPU and fast disk in production).", "s-2vcpu-4gb", "str"),
        SettingSpec("dropletImage", "DigitalOcean image slug; the user-data targets Debian 12 and Ubuntu 22.04/24.04.", "debian-12-x64", "str"),
        SettingSpec("vpcId", "Existing VPC UUID to place members in (the Kubernetes control plane must reach it); empty creates a VPC.", None, "str"),
        SettingSpec("vpcIpRange", "CIDR for the VPC this program creates; empty lets DigitalOcean choose.", None, "str"),
        SettingSpec("dataVolumeSizeGib", "Size of each member's data block volume in GiB.", 20, "int"),
        SettingSpec("protectMembers", "Mark droplets and volumes `protect` so no update can delete or replace them.", True, "bool"),
        SettingSpec("extraTags", "Extra DigitalOcean tags added to every droplet.", [], "list"),
    )),
    # local VMs: the qemu and virtualbox backends
    SettingGroup("local VMs", (
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
    )),
    # events cluster: a second etcd cluster for Kubernetes events
    SettingGroup("events cluster", (
        SettingSpec("eventsCluster", "Run a second etcd cluster beside the main one for Kubernetes events (kube-apiserver --etcd-servers-overrides=/events#...): members etcd-events-N, its own peer CA, server certificates from the main client CA so kube-apiserver's one client certificate works for both.", False, "bool"),
        SettingSpec("eventsMemberCount", "Members of the events cluster: 1, 3, 5 or 7; 0 (the default) means memberCount.", 0, "int"),
        SettingSpec("eventsDropletSize", "digitalocean: droplet size of the events members; empty (the default) means dropletSize.", None, "str"),
        SettingSpec("eventsDataVolumeSizeGib", "Data volume size of each events member in GiB; 0 (the default) means dataVolumeSizeGib.", 0, "int"),
        SettingSpec("eventsVmMemoryMib", "qemu/virtualbox: memory per events member in MiB; 0 (the default) means vmMemoryMib.", 0, "int"),
        SettingSpec("eventsQuotaBackendBytes", "etcd --quota-backend-bytes of the events cluster; 0 (the default) means quotaBackendBytes.", 0, "int"),
        SettingSpec("eventsSnapshotCount", "etcd --snapshot-count of the events cluster; 0 (the default) means snapshotCount.", 0, "int"),
        SettingSpec("eventsAutoCompactionRetention", "etcd --auto-compaction-retention of the events cluster (same mode as autoCompactionMode); empty (the default) means autoCompactionRetention.", None, "str"),
    )),
    # day-2 rollouts: how `pulumi up` reaches running members
    SettingGroup("day-2 rollouts", (
        SettingSpec("rolloutVia", "How `pulumi up` reaches running members over SSH to roll out renewed certificates, etcd upgrades and flag changes, one member at a time: private (their private addresses; the default on qemu/virtualbox), public (their public addresses; adminCidrs must admit the runner) or none (the default on digitalocean until you choose: changes reach new members only).", None, "str"),
        SettingSpec("rolloutBastionHost", "A jump host the runner reaches the members through (SSH agent authentication); empty: direct.", None, "str"),
        SettingSpec("rolloutBastionUser", "SSH user on rolloutBastionHost.", "root", "str"),
        SettingSpec("rolloutBastionPort", "SSH port of rolloutBastionHost.", 22, "int"),
        SettingSpec("replaceMember", "The one member to replace by the next `pulumi up` (its machine died, or its disk), e.g. etcd-2 or etcd-events-2: it leaves the cluster, its machine is created again, and it joins empty and syncs. Done once: remove it after (README, \"Replacing one member\").", None, "str"),
    )),
    # backups: scheduled, encrypted snapshots to S3-compatible storage, and restores
    SettingGroup("backups", (
        SettingSpec("backupBucket", "S3 bucket the members upload encrypted snapshots to; setting it turns scheduled backups on (the main cluster; an events cluster is not backed up: events live an hour).", None, "str"),
        SettingSpec("backupEndpoint", "S3 endpoint URL of the bucket; empty: DigitalOcean Spaces in `region` (https://<region>.digitaloceanspaces.com).", None, "str"),
        SettingSpec("backupRegion", "Signing region of the endpoint (DigitalOcean Spaces and most S3-compatible servers accept us-east-1).", "us-east-1", "str"),
        SettingSpec("backupPrefix", "Key prefix in the bucket; each cluster's snapshots go under <prefix>/<cluster>/ (the backup_location output). Empty: etcd/<stack>.", None, "str"),
        SettingSpec("backupAccessKeyId", "S3 access key ID the members upload with; with backupCreateBucket and no keys the stack makes a Spaces key that may use that bucket only.", None, "str", secret=True),
        SettingSpec("backupSecretAccessKey", "S3 secret access key the members upload with (a secret).", None, "str", secret=True),
        SettingSpec("backupEncryptionKey", "Key every snapshot is encrypted with before it leaves the member (a secret, at least 32 characters): keep a copy outside the stack, a snapshot opens with no other key.", None, "str", secret=True),
        SettingSpec("backupSchedule", "When the members take a snapshot: a systemd OnCalendar expression (hourly, daily, *:0/30, Mon..Fri 02:00), at most every 5 minutes; times are UTC.", "hourly", "str"),
        SettingSpec("backupKeepCount", "Retention: the newest snapshots kept; older ones are deleted after each successful upload.", 72, "int"),
        SettingSpec("backupKeepDays", "Retention: snapshots older than this many days are deleted after each successful upload.", 14, "int"),
        SettingSpec("backupCreateBucket", "digitalocean: create backupBucket as a Spaces bucket in `region` (private, versioned, deleted versions kept backupKeepDays; left in place by `pulumi destroy`).", False, "bool"),
        SettingSpec("restoreFrom", "Create the cluster from a snapshot: latest (the newest of this cluster's own backups), s3://BUCKET/PREFIX/ (the newest there, e.g. another stack's backup_location) or s3://BUCKET/PREFIX/NAME.db. Read when the cluster is created; a running cluster is not changed.", None, "str"),
        SettingSpec("restoreBumpRevision", "How far a restore moves the revision forward, marking the old ones compacted, so a Kubernetes control plane's watches never go back in time (etcd 3.4.27, 3.5.10 and later); 0: restored as it was.", backup.DEFAULT_BUMP_REVISION, "int"),
    )),
    # maintenance: what etcd needs done regularly
    SettingGroup("maintenance", (
        SettingSpec("defragSchedule", "When the members check for fragmentation and defragment, one member at a time and the leader last: a systemd OnCalendar expression, at most hourly; times are UTC; off: never.", backup.MaintenanceSpec().defrag_schedule, "str"),
    )),
)
SPECS: tuple[SettingSpec, ...] = tuple(spec for group in GROUPS for spec in group.specs)
SPEC_BY_KEY = {spec.key: spec for spec in SPECS}

# Settings a stack may still carry from an older version of this program: each gets a message of
# its own instead of "not a setting" (kubespray keeps such a list, `removed_vars`). No setting has
# been renamed or removed yet.
# old key -> (new key, what changed)
RENAMED_SETTINGS: dict[str, tuple[str, str]] = {}
# old key -> why it went and what to do instead
REMOVED_SETTINGS: dict[str, str] = {}
