"""Validation of the etcd settings: the release members install, and etcd's tuning flags."""

from __future__ import annotations

import re
from typing import Any

from model import releases
from model.settings.parsing import Reader, check_range
from model.settings.types import AUTO_COMPACTION_MODES, EtcdTuning

# etcd's documented ceiling for --quota-backend-bytes: above it the backend is not supported.
MAX_QUOTA_BACKEND_BYTES = 8 * 1024**3

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")


def check_release(c: Reader) -> dict[str, Any]:
    etcd_version = c.value("etcdVersion")
    etcd_line = None
    try:
        etcd_line = releases.version_line(etcd_version)
    except releases.VersionError as error:
        c.problem("etcdVersion", etcd_version, str(error))
    refused = releases.refused_reason(etcd_version) if etcd_line is not None else None
    if refused is not None:
        c.problem("etcdVersion", etcd_version, refused)

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
    return {"etcd_version": etcd_version, "etcd_download_url": download_url,
            "etcd_sha256": etcd_sha256}


def check_tuning(c: Reader) -> EtcdTuning:
    heartbeat = c.value("heartbeatIntervalMs")
    election = c.value("electionTimeoutMs")
    check_range(c, "heartbeatIntervalMs", heartbeat, 10, 5000,
                "set it near the round-trip time between members (upstream default 100).")
    check_range(c, "electionTimeoutMs", election, 50, 50000,
                "etcd refuses election timeouts above 50000 ms.")
    if election < 5 * heartbeat:
        c.problem("electionTimeoutMs", election,
                  f"must be at least 5x heartbeatIntervalMs ({heartbeat} ms, so at least "
                  f"{5 * heartbeat} ms); a shorter timeout makes followers start elections on "
                  "ordinary latency. Upstream recommends 10x (heartbeat 100, election 1000).")
    quota = c.value("quotaBackendBytes")
    check_quota(c, "quotaBackendBytes", quota)
    compaction_mode = c.value("autoCompactionMode")
    if compaction_mode not in AUTO_COMPACTION_MODES:
        c.problem("autoCompactionMode", compaction_mode, "must be `periodic` or `revision`.")
    retention = c.value("autoCompactionRetention")
    check_retention(c, "autoCompactionRetention", compaction_mode, retention)
    snapshot_count = c.value("snapshotCount")
    check_snapshot_count(c, "snapshotCount", snapshot_count)
    return EtcdTuning(
        heartbeat_interval_ms=heartbeat,
        election_timeout_ms=election,
        quota_backend_bytes=quota,
        auto_compaction_mode=compaction_mode,
        auto_compaction_retention=retention,
        snapshot_count=snapshot_count,
    )


# The checks the events cluster's own tuning settings share with the main cluster's.

def check_quota(c: Reader, key: str, quota: int) -> None:
    if quota > MAX_QUOTA_BACKEND_BYTES:
        c.problem(key, quota,
                  f"is above 8 GiB ({MAX_QUOTA_BACKEND_BYTES}), the largest backend etcd "
                  "supports; use at most 8589934592 and compact/defragment instead.")
    elif quota < 0:
        c.problem(key, quota, "must be 0 (etcd's default, 2 GiB) or a positive size.")


def check_retention(c: Reader, key: str, compaction_mode: str, retention: str) -> None:
    if compaction_mode == "periodic" and not (_DURATION.match(retention) or retention.isdigit()):
        c.problem(key, retention,
                  "for periodic compaction give a duration such as 8h or 30m (a bare number "
                  "means hours).")
    if compaction_mode == "revision" and not retention.isdigit():
        c.problem(key, retention,
                  "for revision compaction give a number of revisions, e.g. 10000.")


def check_snapshot_count(c: Reader, key: str, snapshot_count: int) -> None:
    check_range(c, key, snapshot_count, 100, 10_000_000,
                "upstream default is 10000 (3.6) / 100000 (3.4, 3.5).")
