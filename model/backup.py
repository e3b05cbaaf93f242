"""Backups, restores and maintenance of a cluster: what the settings ask for, and what members get.

Pure: no Pulumi imports. A cluster with backups takes an encrypted snapshot on a schedule
(`etcd-backup.timer` on every member; the member that leads takes it), uploads it to
S3-compatible storage under its own location (`<bucket>/<prefix>/<cluster>/`), and prunes what
retention no longer keeps. A new cluster can start from a snapshot (`restoreFrom`): each founding
member fetches the same one and restores it before etcd first starts. Defragmentation runs on a
schedule of its own (`etcd-defrag.timer`; the leader defragments one member at a time).
"""

from __future__ import annotations

import datetime
import re
import shlex
from dataclasses import dataclass

# What etcd-backup names its snapshots: <UTC time>-<member>-r<revision>.db
SNAPSHOT_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[a-z0-9-]+-r[0-9]+\.db$")
SNAPSHOT_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
# etcd's guide for a restore that Kubernetes survives: more than the writes made since.
DEFAULT_BUMP_REVISION = 1_000_000_000
LATEST = "latest"
# Where the restore keeps the fetched snapshot: the data volume has room for a copy.
RESTORE_SNAPSHOT_PATH = "/var/lib/etcd/restore.db"
BACKUP_ENV_PATH = "/etc/etcd/backup.env"
# The stack output that records what a cluster was created from (read back by the next run).
RESTORED_OUTPUT = "restored_from"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    # Without leading or trailing '/'.
    prefix: str

    @property
    def url(self) -> str:
        """`s3://bucket/prefix/`: what `restoreFrom` takes to restore from the newest there."""
        return f"s3://{self.bucket}/{self.prefix}/"

    @property
    def path(self) -> str:
        return f"{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class BackupSpec:
    """Scheduled, encrypted snapshots to S3-compatible storage (the settings group `backups`)."""

    bucket: str
    endpoint: str
    region: str
    # The stack's prefix in the bucket; each cluster's snapshots go under `<prefix>/<cluster>`.
    prefix: str
    # None: the stack creates a key for the bucket (DigitalOcean, backupCreateBucket).
    access_key_id: str | None
    secret_access_key: str | None
    encryption_key: str
    # A systemd OnCalendar expression (model/schedule.py checked it).
    schedule: str
    keep_count: int
    keep_days: int
    create_bucket: bool = False

    def location(self, cluster: str) -> S3Location:
        return S3Location(self.bucket, f"{self.prefix}/{cluster}")


@dataclass(frozen=True)
class RestoreSpec:
    """Where a new cluster's snapshot comes from (`restoreFrom`)."""

    # As the user wrote it: the stack records it (`restored_from`).
    text: str
    # None: the cluster's own backup location.
    source: S3Location | None
    # None: the newest snapshot taken before the cluster was created.
    snapshot: str | None
    # 0: the revision is not bumped.
    bump_revision: int
    # Why the revision is not bumped although the user did not ask for 0 (the release cannot).
    bump_skipped: str | None = None


@dataclass(frozen=True)
class MaintenanceSpec:
    # A systemd OnCalendar expression; None: no scheduled defragmentation.
    defrag_schedule: str | None = "*-*-* 04:30:00"


def spaces_endpoint(region: str) -> str:
    """DigitalOcean Spaces' S3 endpoint in `region`."""
    return f"https://{region}.digitaloceanspaces.com"


def parse_restore_from(text: str) -> tuple[S3Location | None, str | None]:
    """`latest`, `s3://bucket/prefix/` (the newest there) or `s3://bucket/prefix/NAME.db` (that
    snapshot) -> (location or None for the cluster's own, snapshot name or None for the newest).
    Raises ValueError saying what is wrong."""
    if text == LATEST:
        return None, None
    if not text.startswith("s3://"):
        raise ValueError("must be `latest` (the newest snapshot of this cluster's own backups), "
                         "s3://BUCKET/PREFIX/ (the newest there) or s3://BUCKET/PREFIX/NAME.db "
                         "(that snapshot), e.g. the backup_location output of the stack to copy.")
    bucket, _, rest = text.removeprefix("s3://").partition("/")
    if text.endswith("/"):
        prefix, snapshot = rest.rstrip("/"), None
    else:
        prefix, _, snapshot = rest.rpartition("/")
        if not SNAPSHOT_NAME.match(snapshot):
            raise ValueError(f"names {snapshot!r}, which is not a snapshot of this program "
                             "(<UTC time>-<member>-r<revision>.db); end the URL with / to "
                             "restore the newest snapshot under it.")
    if not bucket or not prefix:
        raise ValueError("must name a bucket and a prefix: s3://BUCKET/PREFIX/ or "
                         "s3://BUCKET/PREFIX/NAME.db.")
    return S3Location(bucket, prefix), snapshot


def snapshot_time(instant: str) -> str:
    """An RFC 3339 time as it appears in snapshot names (`20261206T194357Z`, UTC)."""
    parsed = datetime.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return parsed.astimezone(datetime.timezone.utc).strftime(SNAPSHOT_TIME_FORMAT)


def backup_environment(spec: BackupSpec, cluster: str, access_key_id: str,
                       secret_access_key: str) -> str:
    """/etc/etcd/backup.env: what etcd-backup reads (shell syntax, each value quoted)."""
    location = spec.location(cluster)
    values = {
        "ETCD_BACKUP_ENDPOINT": spec.endpoint,
        "ETCD_BACKUP_REGION": spec.region,
        "ETCD_BACKUP_BUCKET": location.bucket,
        "ETCD_BACKUP_PREFIX": location.prefix,
        "ETCD_BACKUP_ACCESS_KEY_ID": access_key_id,
        "ETCD_BACKUP_SECRET_ACCESS_KEY": secret_access_key,
        "ETCD_BACKUP_ENCRYPTION_KEY": spec.encryption_key,
        "ETCD_BACKUP_KEEP_COUNT": str(spec.keep_count),
        "ETCD_BACKUP_KEEP_DAYS": str(spec.keep_days),
    }
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


def restore_commands(restore: RestoreSpec, etcd_backup: str, etcd_restore: str,
                     created_at: str) -> list[list[str]]:
    """What a founding member runs before etcd first starts: fetch the snapshot (every member
    the same one: `latest` is the newest taken before `created_at`, the cluster's creation, so
    a snapshot the source takes while the members boot is never chosen), restore it as the
    member, and drop the copy."""
    fetch = [etcd_backup, "--fetch", restore.snapshot or LATEST]
    if restore.source is not None:
        fetch += ["--from", restore.source.path]
    if restore.snapshot is None:
        fetch += ["--taken-before", snapshot_time(created_at)]
    fetch += ["--output", RESTORE_SNAPSHOT_PATH]
    apply = [etcd_restore, "--snapshot", RESTORE_SNAPSHOT_PATH]
    if restore.bump_revision > 0:
        apply += ["--bump-revision", str(restore.bump_revision)]
    return [fetch, apply, ["rm", "-f", RESTORE_SNAPSHOT_PATH]]


def running_cluster_warning(cluster: str, restore_from: str) -> str:
    return (f"etcd cluster {cluster}: restoreFrom {restore_from} changes nothing: the cluster "
            "runs, and a restore happens only when a cluster is created (a new stack, or after "
            "`pulumi destroy`). To bring a running cluster back to a snapshot, follow the "
            "README's restore procedure; remove the setting to silence this.")
