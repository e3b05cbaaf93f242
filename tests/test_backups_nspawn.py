"""Backups and a cluster created from one, on real machines: the program's user-data, real
cloud-init and systemd in system containers of the local image, a real S3 server.

The local stack with backups to the Versity S3 Gateway on the members' gateway address, etcd
3.6.14 (built from Go modules) installed by the members themselves:
- first boot installs the member files (the scripts, the backup and defragmentation timers, the
  backup settings, root's alone) and enables the timers;
- the timer (made to fire every 10 s here by a drop-in) takes snapshots on the leader alone, and
  each reaches the bucket sealed; a storage outage fails the leader's backup unit, with the
  reason in its journal and the failure in the metrics file, and the next run after it succeeds;
- the defragmentation service runs on its timer's unit and succeeds;
- a second stack created from the first one's backup_location (restoreFrom, as a user copies it):
  every member fetches the same snapshot at its first boot and restores it before etcd starts;
  the cluster serves the keys written before the snapshot and not one written after, with the
  revision moved forward by restoreBumpRevision.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import realcheck
from guests.local_cluster import GATEWAY, LocalCluster, nspawn_stack, wait_healthy
from guests.nspawn import NspawnCluster, Unavailable, cloud_init_problems
from program import Secret
from realcluster.objectstore import S3Server, new_credentials, rclone_binary
from realcluster.tools import Unavailable as ToolUnavailable

pytestmark = pytest.mark.real

VERSION = "3.6.14"
PREFIX = "etcd/e2e/e2e"
TIMER = "etcd-backup.timer"
# The drop-in that makes the timer fire every 10 s (its OnCalendar= is the setting's, hourly).
FAST_TIMER = "[Timer]\nOnCalendar=\nOnCalendar=*:*:0/10 UTC\n"


@pytest.fixture(scope="module")
def release(etcd_release: tuple[Path, str]) -> tuple[Path, str]:
    """The built etcd 3.6.14 tarball, served where the members download from."""
    served, _ = etcd_release
    tarball, sha256 = realcheck.built_release_tarball(VERSION)
    shutil.copy2(tarball, served / tarball.name)
    return served, sha256


@pytest.fixture(scope="module")
def credentials() -> tuple[str, str, str]:
    try:
        rclone_binary()
    except ToolUnavailable as missing:
        pytest.skip(str(missing))
    access_key_id, secret_access_key = new_credentials()
    return access_key_id, secret_access_key, secrets.token_urlsafe(48)


def backup_settings(credentials: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    access_key_id, secret_access_key, key = credentials
    return {"etcdVersion": VERSION, "backupBucket": "etcd-backups",
            "backupEndpoint": f"http://{GATEWAY}:7070", "backupAccessKeyId": access_key_id,
            "backupSecretAccessKey": Secret(secret_access_key),
            "backupEncryptionKey": Secret(key), **extra}


@contextlib.contextmanager
def stack_with_store(program: Any, image: Path, release: tuple[Path, str], workdir: Path,
                     credentials: tuple[str, str, str], stack: str, objects: Path,
                     **extra: Any) -> Iterator[tuple[LocalCluster, NspawnCluster, list[S3Server]]]:
    """The stack `stack` in containers, the S3 server on its gateway over `objects` (started
    before the members boot: a restore fetches at first boot)."""
    servers: list[S3Server] = []

    def start_store(machines: NspawnCluster) -> None:
        try:
            servers.append(S3Server(objects, GATEWAY, machines.bridge_argv,
                                    workdir / f"{stack}-objects.log",
                                    credentials=credentials[:2]))
        except ToolUnavailable as missing:
            raise Unavailable(str(missing)) from missing

    try:
        with nspawn_stack(program, image, release, 3, workdir / stack, stack=stack,
                          extra=backup_settings(credentials, **extra),
                          before_boot=start_store) as (cluster, machines):
            try:
                yield cluster, machines, servers
            finally:
                for server in servers:
                    server.close()
    except Unavailable as missing:
        pytest.skip(str(missing))


def snapshots(objects: Path, prefix: str = PREFIX) -> list[str]:
    directory = objects / "etcd-backups" / prefix
    return sorted(path.name.removesuffix(".bin") for path in directory.glob("*.db.bin")) \
        if directory.is_dir() else []


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    assert realcheck.wait_for(predicate, timeout, interval=1), f"not within {timeout} s: {what}"


def leader_of(cluster: LocalCluster) -> str:
    statuses = json.loads(cluster.run_etcdctl("endpoint", "status", "--cluster", "-w",
                                              "json").stdout)
    leader_id = statuses[0]["Status"]["leader"]
    members = json.loads(cluster.run_etcdctl("member", "list", "-w", "json").stdout)["members"]
    return str(next(member["name"] for member in members if member["ID"] == leader_id))


def unit_state(machines: NspawnCluster, name: str, unit: str) -> str:
    return machines.exec(name, ["systemctl", "is-failed", unit]).stdout.strip()


def test_backups_on_the_timer_survive_an_outage_and_a_new_stack_starts_from_them(
        program: Any, local_image: Path, release: tuple[Path, str],
        credentials: tuple[str, str, str], tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    with stack_with_store(program, local_image, release, tmp_path, credentials, "e2e",
                          objects) as (cluster, machines, servers):
        wait_healthy(cluster)
        for name in machines.members:
            status = cluster.cloud_init_status[name]
            assert cloud_init_problems(status) == [], status
            mode = machines.exec(name, ["stat", "-c", "%U %a", "/etc/etcd/backup.env"],
                                 check=True).stdout.strip()
            assert mode == "root 600", (name, mode)
            for timer in (TIMER, "etcd-defrag.timer"):
                enabled = machines.exec(name, ["systemctl", "is-enabled", timer]).stdout.strip()
                assert enabled == "enabled", (name, timer, enabled)
        for index in range(50):
            cluster.run_etcdctl("put", f"/registry/backed-up/{index:02d}", f"v{index}")

        # The timer, every 10 s on every member: the leader alone takes each snapshot.
        for name in machines.members:
            machines.exec(name, ["sh", "-c", 'mkdir -p "$1.d" && printf "%s" "$2" > "$1.d/fast.conf" '
                                 '&& systemctl daemon-reload && systemctl restart etcd-backup.timer',
                                 "sh", f"/etc/systemd/system/{TIMER}", FAST_TIMER], check=True)
        leader = leader_of(cluster)
        wait_until(lambda: len(snapshots(objects)) >= 2, 120, "two snapshots in the bucket")
        taken = snapshots(objects)
        assert all(f"-{leader}-r" in name for name in taken), (leader, taken)
        follower = next(name for name in machines.members if name != leader)
        said = machines.exec(follower, ["journalctl", "-u", "etcd-backup.service", "--no-pager"],
                             check=True).stdout
        assert "does not lead the cluster: the leader takes the snapshot" in said, said
        metrics = machines.exec(leader, ["cat", "/var/lib/etcd-backup/etcd-backup.prom"],
                                check=True).stdout
        assert "etcd_backup_last_success_timestamp_seconds" in metrics, metrics

        # An outage: the leader's unit fails saying why; the next run after it succeeds.
        (store,) = servers
        store.stop()
        try:
            wait_until(lambda: unit_state(machines, leader, "etcd-backup.service") == "failed",
                       120, f"etcd-backup.service failed on {leader}")
            journal = machines.exec(leader, ["journalctl", "-u", "etcd-backup.service",
                                             "--no-pager"], check=True).stdout
            # Which step meets the outage depends on when it starts (the upload, its read-back,
            # or the listing for retention after an upload that got through): each names the
            # endpoint it could not reach.
            said_why = [line for line in journal.splitlines()
                        if "etcd-backup: " in line and store.endpoint in line]
            assert said_why, journal
            assert credentials[1] not in journal and credentials[2] not in journal
            failed = machines.exec(leader, ["cat", "/var/lib/etcd-backup/etcd-backup.prom"],
                                   check=True).stdout
            assert "etcd_backup_last_failure_timestamp_seconds" in failed, failed
        finally:
            store.start()
        before = len(snapshots(objects))
        wait_until(lambda: len(snapshots(objects)) > before and
                   unit_state(machines, leader, "etcd-backup.service") != "failed",
                   120, "a snapshot after the outage")

        defrag = machines.exec(leader, ["systemctl", "start", "etcd-defrag.service"], timeout=600)
        assert defrag.returncode == 0, defrag.stdout + defrag.stderr
        assert unit_state(machines, leader, "etcd-defrag.service") != "failed"

        # No more snapshots; a write after the last one must not come back in the copy.
        for name in machines.members:
            machines.exec(name, ["systemctl", "stop", TIMER], check=True)
        wait_until(lambda: all(machines.exec(name, ["systemctl", "is-active",
                                                    "etcd-backup.service"]).stdout.strip()
                               != "activating" for name in machines.members), 120,
                   "the last backup run to end")
        cluster.run_etcdctl("put", "/registry/after-the-last-snapshot", "lost")
        location = cluster.run.output("backup_location")
        assert location == f"s3://etcd-backups/{PREFIX}/"
        last = snapshots(objects)[-1]

    # A new stack from the first one's backups, with its location as a user copies it.
    with stack_with_store(program, local_image, release, tmp_path, credentials, "e2e-copy",
                          objects, restoreFrom=location) as (copy, machines, _servers):
        health = wait_healthy(copy)
        assert health.returncode == 0, health.stdout + health.stderr
        for name in machines.members:
            log = machines.exec(name, ["cat", "/var/log/cloud-init-output.log"], check=True).stdout
            assert f"etcd-backup: fetched {last} from etcd-backups/{PREFIX}" in log, (name, log[-3000:])
            assert f"etcd-restore: {name}: restored revision" in log, (name, log[-3000:])
        got = json.loads(copy.run_etcdctl("get", "/registry/backed-up/", "--prefix",
                                          "-w", "json").stdout)
        assert len(got.get("kvs", [])) == 50
        after = copy.run_etcdctl("get", "/registry/after-the-last-snapshot", "--print-value-only")
        assert after.stdout.strip() == ""
        revision = json.loads(copy.run_etcdctl("endpoint", "status", "-w", "json").stdout)[0][
            "Status"]["header"]["revision"]
        assert revision >= 1_000_000_000, revision
        assert copy.run.output("restored_from") == location
        assert copy.run_etcdctl("put", "/registry/in-the-copy", "ok").returncode == 0
