"""Validation of the backup, restore and maintenance settings.

Backups are on when `backupBucket` is set. Every credential and the encryption key must be
stored as Pulumi secrets (`pulumi config set --secret`), and no message shows them.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from model import releases
from model.backup import (
    BackupSpec,
    MaintenanceSpec,
    RestoreSpec,
    parse_restore_from,
    spaces_endpoint,
)
from model.schedule import ScheduleError, parse_calendar
from model.settings.parsing import Reader, check_range

# S3's bucket naming rules (DigitalOcean Spaces' are the same without dots).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
# Printable ASCII without spaces: what S3 credentials are, and what a key can be on one line.
_TOKEN = re.compile(r"^[\x21-\x7e]+$")
MIN_ENCRYPTION_KEY = 32
# A snapshot costs a full read of the database on the leader: not more often than this.
MIN_BACKUP_INTERVAL_SECONDS = 300
# Defragmentation blocks each member in turn while it runs.
MIN_DEFRAG_INTERVAL_SECONDS = 3600
OFF = "off"
BACKUP_SETTINGS = ("backupEndpoint", "backupRegion", "backupPrefix", "backupAccessKeyId",
                   "backupSecretAccessKey", "backupEncryptionKey", "backupSchedule",
                   "backupKeepCount", "backupKeepDays", "backupCreateBucket", "restoreFrom",
                   "restoreBumpRevision")
_GENERATE_KEY = ("`openssl rand -base64 48 | pulumi config set --secret backupEncryptionKey`; "
                 "keep a copy outside the stack: a snapshot opens with no other key")


def check_schedule(c: Reader, key: str, shortest_seconds: int, examples: str) -> str | None:
    text = c.value(key)
    try:
        schedule = parse_calendar(text)
    except ScheduleError as error:
        c.problem(key, text, str(error))
        return None
    if schedule.shortest_interval_seconds() < shortest_seconds:
        c.problem(key, text, f"runs as often as every {schedule.shortest_interval_seconds()} s; "
                  f"it may run at most once every {shortest_seconds // 60} minutes (e.g. "
                  f"{examples}).")
        return None
    return schedule.expression


def check_maintenance(c: Reader) -> MaintenanceSpec:
    if c.value("defragSchedule") == OFF:
        return MaintenanceSpec(defrag_schedule=None)
    return MaintenanceSpec(defrag_schedule=check_schedule(
        c, "defragSchedule", MIN_DEFRAG_INTERVAL_SECONDS, "daily, Sun 03:00 or 0/6:30"))


def _check_endpoint(c: Reader, endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        c.problem("backupEndpoint", endpoint, "must be the URL of an S3 endpoint with no path, "
                  "e.g. https://fra1.digitaloceanspaces.com or https://s3.eu-west-1.amazonaws.com.")
        return
    if parts.scheme == "http":
        try:
            private = ipaddress.ip_address(parts.hostname).is_private
        except ValueError:
            private = False
        if not private:
            c.problem("backupEndpoint", endpoint, "uses plain http: the requests would cross the "
                      "network in clear; use https (plain http only to a private address of "
                      "your own network).")


def _check_token(c: Reader, key: str, value: str, what: str) -> None:
    if not _TOKEN.match(value):
        c.problem(key, value, f"{what} must be printable characters without spaces or line breaks.")


def _require_secret(c: Reader, key: str, value: str | None, fix: str) -> None:
    if value and key not in c.secret_keys:
        c.problem(key, value, f"is stored in plain text in the stack's configuration; "
                  f"store it as a secret: `pulumi config rm {key}`, then {fix}.")


def check_backups(c: Reader, backend: str, region: str, stack: str,
                  etcd_version: str) -> tuple[BackupSpec | None, RestoreSpec | None]:
    bucket = c.value("backupBucket")
    if not bucket:
        for key in BACKUP_SETTINGS:
            if c.is_set(key):
                c.problem(key, c.raw.get(key), "configures backups, which are off without "
                          "backupBucket; set `pulumi config set backupBucket NAME`, or remove "
                          "the setting.")
        return None, None
    create_bucket = c.value("backupCreateBucket")
    if not _BUCKET.match(bucket) or ".." in bucket or _looks_like_address(bucket):
        c.problem("backupBucket", bucket, "must be an S3 bucket name: 3-63 lowercase letters, "
                  "digits, hyphens and dots, starting and ending with a letter or digit.")
    elif create_bucket and "." in bucket:
        c.problem("backupBucket", bucket, "DigitalOcean Spaces bucket names have no dots; use "
                  "hyphens.")
    if create_bucket and backend != "digitalocean":
        c.problem("backupCreateBucket", True, f"creates a DigitalOcean Spaces bucket; {backend} "
                  "members back up to a bucket that exists: create it yourself and remove the "
                  "setting.")
    endpoint = c.value("backupEndpoint") or spaces_endpoint(region)
    _check_endpoint(c, endpoint)
    signing_region = c.value("backupRegion")
    if not _REGION.match(signing_region):
        c.problem("backupRegion", signing_region, "must be the storage's region name (lowercase "
                  "letters, digits, hyphens), e.g. us-east-1 (what DigitalOcean Spaces accepts).")
    prefix = (c.value("backupPrefix") or f"etcd/{stack}").strip("/")
    if not _PREFIX.match(prefix) or len(prefix) > 200:
        c.problem("backupPrefix", prefix, "must be a key prefix of path segments of letters, "
                  "digits, '.', '_' and '-' separated by '/', e.g. etcd/prod (at most 200 "
                  "characters).")

    access_key_id = c.value("backupAccessKeyId") or None
    secret_access_key = c.value("backupSecretAccessKey") or None
    for key, value in (("backupAccessKeyId", access_key_id),
                       ("backupSecretAccessKey", secret_access_key)):
        if value is not None:
            _check_token(c, key, value, "an S3 credential")
        elif not create_bucket:
            c.problem(key, None, "is required with backupBucket: the members upload with it "
                      f"(`pulumi config set --secret {key} ...`; with backupCreateBucket the "
                      "stack makes a key for the bucket instead).")
    if (access_key_id is None) != (secret_access_key is None) and create_bucket:
        c.problem("backupAccessKeyId", access_key_id, "and backupSecretAccessKey go together: "
                  "set both, or neither to have the stack make a key for the bucket.")
    _require_secret(c, "backupSecretAccessKey", secret_access_key,
                    "`pulumi config set --secret backupSecretAccessKey ...`")
    encryption_key = c.value("backupEncryptionKey") or ""
    if not encryption_key:
        c.problem("backupEncryptionKey", None, "is required with backupBucket: every snapshot is "
                  f"encrypted with it before it leaves the member. Generate one: {_GENERATE_KEY}.")
    else:
        _check_token(c, "backupEncryptionKey", encryption_key, "the key")
        if len(encryption_key) < MIN_ENCRYPTION_KEY:
            c.problem("backupEncryptionKey", encryption_key, f"is {len(encryption_key)} "
                      f"characters; use at least {MIN_ENCRYPTION_KEY}: {_GENERATE_KEY}.")
        _require_secret(c, "backupEncryptionKey", encryption_key, _GENERATE_KEY)

    schedule = check_schedule(c, "backupSchedule", MIN_BACKUP_INTERVAL_SECONDS,
                              "*:0/15, hourly or 0/6:00")
    keep_count = c.value("backupKeepCount")
    check_range(c, "backupKeepCount", keep_count, 1, 10000, "the newest snapshots kept (0 would "
                "delete every snapshot after each upload).")
    keep_days = c.value("backupKeepDays")
    check_range(c, "backupKeepDays", keep_days, 1, 3650, "snapshots older than this many days "
                "are deleted after each upload.")
    backup = BackupSpec(bucket=bucket, endpoint=endpoint, region=signing_region, prefix=prefix,
                        access_key_id=access_key_id, secret_access_key=secret_access_key,
                        encryption_key=encryption_key, schedule=schedule or "",
                        keep_count=keep_count, keep_days=keep_days, create_bucket=create_bucket)
    return backup, check_restore(c, etcd_version)


def check_restore(c: Reader, etcd_version: str) -> RestoreSpec | None:
    text = c.value("restoreFrom")
    bump = c.value("restoreBumpRevision")
    check_range(c, "restoreBumpRevision", bump, 0, 2**62, "0 restores the revision as it was.")
    if not text:
        return None
    try:
        source, snapshot = parse_restore_from(text)
    except ValueError as error:
        c.problem("restoreFrom", text, str(error))
        return None
    skipped = None
    try:
        can_bump = releases.can_bump_revision(etcd_version)
    except releases.VersionError:
        can_bump = True  # etcdVersion's own problem is reported
    if bump > 0 and not can_bump:
        minimum = releases.BUMP_REVISION_MINIMUM[releases.version_line(etcd_version)]
        if c.is_set("restoreBumpRevision"):
            c.problem("restoreBumpRevision", bump, f"etcd {etcd_version} cannot bump the restored "
                      f"revision ({minimum} and later can); set etcdVersion to {minimum} or "
                      "later, or `pulumi config set restoreBumpRevision 0`.")
        skipped = (f"etcd {etcd_version} cannot bump the restored revision ({minimum} and later "
                   "can), so it is restored as it was: a Kubernetes control plane that "
                   "outlived the old cluster must not be pointed at this one (its watches would "
                   "go back in time); start its API servers afresh.")
        bump = 0
    return RestoreSpec(text=text, source=source, snapshot=snapshot, bump_revision=bump,
                       bump_skipped=skipped)


def _looks_like_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True

