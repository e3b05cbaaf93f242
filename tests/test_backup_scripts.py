"""`etcd-backup` and `etcd-restore` (cloudinit/scripts/) on real members, with a real S3 server.

A real 3-member cluster of the program's own user-data (network-namespace harness) and the
Versity S3 Gateway on its network (tests/realcluster/objectstore.py). The script runs on every
member as the timer runs it, as root in the member's namespace with its etcdctl.env:
- only the leader takes the snapshot; it is checked, sealed with the key, uploaded, read back;
  what the bucket holds is not readable without the key (the values written are not in it, and
  rclone refuses a wrong key), and decrypted with the key it is a snapshot etcd's own tools
  accept, holding the keys written; the outcome is in etcd-backup.prom for monitoring;
- retention prunes, after the upload, what is beyond the newest count or older than the days,
  and leaves objects of other names alone;
- a storage outage fails the run (exit 1, the endpoint named, the failure's time recorded, the
  last good snapshot's time kept), and the next run after it succeeds.
- restore: `etcd-backup --fetch latest` on every member of the lost cluster opens the newest
  snapshot (another key opens nothing and writes nothing), `etcd-restore` refuses while etcd
  runs, and otherwise restores it as the member (the old data directory kept), with the
  revision bumped and marked compacted where the tool can (3.6); the cluster comes back healthy
  with the snapshot's keys and without a write made after it.
On etcd 3.4 (etcdctl checks and restores: no etcdutl) and on 3.6 (etcdutl).
"""

from __future__ import annotations

import datetime
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from program import ProgramRun
from realcluster.backups import BACKUP, RESTORE, metrics, run_backup, state_dir
from realcluster.backups import restore_env as member_restore_env
from realcluster.harness import Cluster, Result
from realcluster.objectstore import ObjectStore, rclone_binary
from realcluster.pytest_support import new_cluster, report
from realcluster.rollout import MemberScripts
from realcluster.tools import Unavailable

pytestmark = pytest.mark.real

PREFIX = "stack/backups"
# A snapshot's name as etcd-backup makes it: <UTC time>-<member>-r<revision>.db
NAME_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass
class Backups:
    cluster: Cluster
    store: ObjectStore
    scripts: dict[str, MemberScripts]
    key: str

    def run(self, name: str, *args: str, key: str | None = None, keep_count: int = 168,
            keep_days: int = 7, prefix: str = PREFIX) -> Result:
        """etcd-backup on member `name` with its backup.env for the store."""
        return run_backup(self.scripts[name], self.store, prefix, key or self.key, *args,
                          keep_count=keep_count, keep_days=keep_days)

    def state_dir(self, name: str) -> Path:
        return state_dir(self.cluster.members[name])

    def metrics(self, name: str) -> dict[str, float]:
        return metrics(self.cluster.members[name])

    def leader(self) -> str:
        leader = self.cluster.leader()
        assert leader is not None, "the members agree on no leader"
        return leader

    def sealed(self, *args: str, key: str | None = None, prefix: str = PREFIX) -> Result:
        return self.store.rclone(prefix, key or self.key, *args)


@pytest.fixture(scope="module", params=["3.4", "3.6"], ids=lambda line: f"etcd{line}")
def backups(request: pytest.FixtureRequest, program: Callable[..., ProgramRun]) -> Backups:
    try:
        rclone_binary()
    except Unavailable as missing:
        pytest.skip(str(missing))
    cluster = new_cluster(request, program, (request.param, 3))
    try:
        store = ObjectStore(cluster)
    except Unavailable as missing:
        pytest.skip(str(missing))
    request.addfinalizer(store.close)
    scripts = {name: MemberScripts(cluster, member) for name, member in cluster.members.items()}
    return Backups(cluster, store, scripts, key=secrets.token_urlsafe(32))


def ok(result: Result, what: str) -> Result:
    assert result.ok, f"{what} failed:\n{result}"
    return result


def snapshot_names(backups: Backups, prefix: str = PREFIX) -> list[str]:
    listed = ok(backups.sealed("lsf", "--files-only", "sealed:", prefix=prefix),
                "listing the snapshots")
    return sorted(name for name in listed.stdout.split() if name.endswith(".db"))


def test_only_the_leader_uploads_a_sealed_snapshot_that_only_the_key_opens(
        backups: Backups, tmp_path: Path) -> None:
    cluster = backups.cluster
    marker = f"value-{secrets.token_hex(8)}"
    for index in range(50):
        assert cluster.put(f"/registry/backup/{index}", marker).ok
    before = set(snapshot_names(backups))
    leader = backups.leader()
    outcomes = {name: ok(backups.run(name), f"etcd-backup on {name}") for name in cluster.names}
    for name, outcome in outcomes.items():
        if name == leader:
            assert "uploaded" in outcome.stdout, outcome
        else:
            assert "does not lead the cluster: the leader takes the snapshot" in outcome.stdout, outcome
            assert "etcd_backup_last_success_timestamp_seconds" not in backups.metrics(name)
    new = sorted(set(snapshot_names(backups)) - before)
    assert len(new) == 1 and f"-{leader}-r" in new[0], new

    # The bucket holds it sealed: not the values, not the snapshot's bytes.
    stored = backups.store.objects(PREFIX)[f"{new[0]}.bin"]
    assert marker.encode() not in stored
    wrong = backups.sealed("cat", f"sealed:{new[0]}", key=secrets.token_urlsafe(32))
    # rclone stops at the first block that does not authenticate.
    assert not wrong.ok and marker not in wrong.stdout, wrong

    # With the key: a snapshot etcd's tools accept, holding what was written.
    opened = tmp_path / "opened.db"
    ok(backups.sealed("copyto", f"sealed:{new[0]}", str(opened)), "downloading the snapshot")
    assert marker.encode() in opened.read_bytes()
    release = cluster.release
    status = subprocess.run([str(release.restore_tool), "snapshot", "status", str(opened),
                             "-w", "json"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr

    metrics = backups.metrics(leader)
    assert metrics["etcd_backup_last_size_bytes"] == opened.stat().st_size
    assert metrics["etcd_backup_last_revision"] > 50
    assert abs(metrics["etcd_backup_last_success_timestamp_seconds"]
               - datetime.datetime.now().timestamp()) < 300
    assert "etcd_backup_last_failure_timestamp_seconds" not in metrics


def test_retention_prunes_beyond_the_newest_count_and_the_age_and_leaves_other_objects(
        backups: Backups, tmp_path: Path) -> None:
    # Earlier snapshots, as earlier runs would have named them: 1, 2, 3 and 10 days old.
    now = datetime.datetime.now(datetime.timezone.utc)
    filler = tmp_path / "filler.db"
    filler.write_bytes(b"an earlier snapshot")
    old = [f"{(now - datetime.timedelta(days=days)).strftime(NAME_FORMAT)}-etcd-1-r{days}.db"
           for days in (1, 2, 3, 10)]
    # A prefix of its own: only these and the new one are there.
    prefix = "stack/retention"
    for name in [*old, "operator-notes.txt"]:
        ok(backups.sealed("copyto", str(filler), f"sealed:{name}", prefix=prefix),
           f"seeding {name}")
    before = set(snapshot_names(backups, prefix))

    # Within the newest 5, but older than 5 days: pruned by age alone.
    by_age = ok(backups.run(backups.leader(), keep_count=5, keep_days=5, prefix=prefix),
                "etcd-backup")
    first = sorted(set(snapshot_names(backups, prefix)) - before)
    assert len(first) == 1, by_age
    assert snapshot_names(backups, prefix) == sorted([first[0], *old[:3]]), by_age
    assert "pruned 1" in by_age.stdout, by_age

    # Younger than the days, but beyond the newest 2: pruned by count alone.
    time.sleep(1.1)  # a name per second
    assert backups.cluster.put("/registry/backup/retention", "next").ok
    by_count = ok(backups.run(backups.leader(), keep_count=2, keep_days=30, prefix=prefix),
                  "etcd-backup")
    second = sorted(set(snapshot_names(backups, prefix)) - before - set(first))
    assert len(second) == 1, by_count
    assert snapshot_names(backups, prefix) == sorted([first[0], second[0]]), by_count
    # Objects of other names are never touched.
    listed = ok(backups.sealed("lsf", "--files-only", "sealed:", prefix=prefix),
                "listing").stdout.split()
    assert "operator-notes.txt" in listed

def test_a_storage_outage_fails_the_run_and_the_next_run_after_it_succeeds(
        backups: Backups) -> None:
    leader = backups.leader()
    ok(backups.run(leader), "etcd-backup before the outage")
    good = backups.metrics(leader)["etcd_backup_last_success_timestamp_seconds"]
    backups.store.stop()
    try:
        failed = backups.run(leader)
    finally:
        backups.store.start()
    assert failed.returncode == 1, failed
    assert "failed: " in failed.stderr and backups.store.endpoint in failed.stderr, failed
    assert backups.key not in failed.output and backups.store.secret_access_key not in failed.output
    metrics = backups.metrics(leader)
    assert metrics["etcd_backup_last_success_timestamp_seconds"] == good
    assert metrics["etcd_backup_last_failure_timestamp_seconds"] >= good
    # Nothing of the failed run is left on the member.
    work = backups.cluster.members[leader].path("/var/lib/etcd/backup")
    assert not any(work.iterdir()), sorted(work.iterdir())

    again = ok(backups.run(leader), "etcd-backup after the outage")
    assert "uploaded" in again.stdout
    assert backups.metrics(leader)["etcd_backup_last_success_timestamp_seconds"] >= good


def test_a_member_that_does_not_lead_takes_one_when_asked(backups: Backups) -> None:
    follower = next(name for name in backups.cluster.names if name != backups.leader())
    outcome = ok(backups.run(follower, "--any-member"), "etcd-backup --any-member")
    assert "uploaded" in outcome.stdout and f"-{follower}-r" in outcome.stdout, outcome


def test_without_its_settings_the_script_refuses_naming_the_file(backups: Backups) -> None:
    name = backups.cluster.names[0]
    missing = backups.cluster.members[name].path("/etc/etcd/no-backup.env")
    outcome = backups.scripts[name].run(BACKUP, env={"ETCD_BACKUP_ENV_FILE": str(missing)})
    assert outcome.returncode == 1
    assert f"{missing} is missing: backups are not configured on this member" in outcome.stderr



# --- restore: etcd-backup --fetch, then etcd-restore on every member --------------------------
# These run last: the restore replaces the cluster's data (its names stay).


def restore_env(backups: Backups, name: str) -> dict[str, str]:
    return member_restore_env(backups.cluster.members[name])


def fetch(backups: Backups, name: str, which: str, *args: str,
          key: str | None = None) -> tuple[Result, Path]:
    """etcd-backup --fetch on member `name` into its /root/snapshot.db (removed first)."""
    output = backups.cluster.members[name].path("/root/snapshot.db")
    output.parent.mkdir(mode=0o700, exist_ok=True)
    output.unlink(missing_ok=True)
    return backups.run(name, "--fetch", which, *args, "--output", str(output), key=key), output


def restore_can_bump(cluster: Cluster) -> bool:
    shown = subprocess.run([str(cluster.release.restore_tool), "snapshot", "restore", "--help"],
                           capture_output=True, text=True, timeout=60)
    return "--bump-revision" in shown.stdout + shown.stderr


def test_a_fetch_with_another_key_fails_and_writes_nothing(backups: Backups) -> None:
    name = backups.cluster.names[0]
    ok(backups.run(backups.leader()), "etcd-backup")
    failed, output = fetch(backups, name, "latest", key=secrets.token_urlsafe(32))
    assert failed.returncode == 1, failed
    assert "cannot download and open" in failed.stderr, failed
    assert not output.exists()


def test_check_counts_the_snapshots_and_fails_naming_the_endpoint_while_storage_is_down(
        backups: Backups) -> None:
    name = backups.cluster.names[0]
    ok(backups.run(backups.leader()), "etcd-backup")
    checked = ok(backups.run(name, "--check"), "etcd-backup --check")
    count = len(snapshot_names(backups))
    assert f"{backups.store.bucket}/{PREFIX} at {backups.store.endpoint} answers: {count} snapshot(s)" \
        in checked.stdout, checked
    backups.store.stop()
    try:
        failed = backups.run(name, "--check")
    finally:
        backups.store.start()
    assert failed.returncode == 1, failed
    assert f"cannot list the snapshots in {backups.store.bucket}/{PREFIX} at {backups.store.endpoint}" \
        in failed.stderr, failed
    assert backups.key not in failed.output and backups.store.secret_access_key not in failed.output


def test_latest_taken_before_a_time_is_the_newest_before_it_on_every_member(
        backups: Backups) -> None:
    # One real snapshot, copied in the bucket under the names of three earlier ones.
    prefix = "stack/cutoff"
    leader = backups.leader()
    ok(backups.run(leader, "--any-member", prefix=prefix), "etcd-backup")
    (taken,) = snapshot_names(backups, prefix)
    names = [f"202612{day:02d}T120000Z-{leader}-r{day}.db" for day in (1, 2, 3)]
    for name in names:
        ok(backups.sealed("copyto", f"sealed:{taken}", f"sealed:{name}", prefix=prefix),
           f"copying to {name}")
    for member in backups.cluster.names:
        fetched, _ = fetch(backups, member, "latest", "--from",
                           f"{backups.store.bucket}/{prefix}", "--taken-before", "20261203T000000Z")
        ok(fetched, f"etcd-backup --fetch latest --taken-before on {member}")
        assert f"fetched {names[1]} from {backups.store.bucket}/{prefix}" in fetched.stdout, fetched
    none, output = fetch(backups, leader, "latest", "--from", f"{backups.store.bucket}/{prefix}",
                         "--taken-before", "20261101T000000Z")
    assert none.returncode == 1 and not output.exists()
    assert "holds no snapshot taken before 20261101T000000Z" in none.stderr, none


def test_restore_refuses_while_etcd_runs_and_changes_nothing(backups: Backups) -> None:
    name = backups.cluster.names[0]
    ok(fetch(backups, name, "latest")[0], "etcd-backup --fetch")
    data = backups.cluster.members[name].data_dir
    before = sorted(path.name for path in data.parent.iterdir())
    refused = backups.scripts[name].run(RESTORE, "--snapshot", str(
        backups.cluster.members[name].path("/root/snapshot.db")), env=restore_env(backups, name))
    assert refused.returncode == 1, refused
    assert "etcd answers on this member: stop it on every member first" in refused.stderr
    assert sorted(path.name for path in data.parent.iterdir()) == before


def test_a_lost_cluster_comes_back_from_the_newest_snapshot_in_the_bucket(
        backups: Backups, request: pytest.FixtureRequest) -> None:
    cluster = backups.cluster
    for index in range(20):
        assert cluster.put(f"/registry/restore/before/{index:02d}", f"v{index}").ok
    ok(backups.run(backups.leader()), "etcd-backup")
    snapshot_revision = max(int(status["header"]["revision"])
                            for status in cluster.statuses(cluster.names).values())
    assert cluster.put("/registry/restore/after", "written after the snapshot").ok
    cluster.stop()
    # Kubernetes' watchers must see revisions move forward only: bump where the tool can.
    bump = 1_000_000 if restore_can_bump(cluster) else 0
    for name, member in cluster.members.items():
        fetched, snapshot = fetch(backups, name, "latest")
        ok(fetched, f"etcd-backup --fetch on {name}")
        args = ["--snapshot", str(snapshot)] + (["--bump-revision", str(bump)] if bump else [])
        env = {**restore_env(backups, name),
               "ETCD_OWNER": f"{member.run_as.uid}:{member.run_as.gid}"}
        restored = ok(backups.scripts[name].run(RESTORE, *args, env=env), f"etcd-restore on {name}")
        assert f"{name}: restored revision" in restored.stdout, restored
        assert "kept the data directory that was there" in restored.stdout, restored
        stat = member.data_dir.stat()
        assert (stat.st_mode & 0o777, stat.st_uid, stat.st_gid) == (
            0o700, member.run_as.uid, member.run_as.gid)
    cluster.start()
    cluster.wait_ready(timeout=300)
    cluster.wait_healthy(timeout=300)
    assert cluster.get_prefix("/registry/restore/before/") == {
        f"/registry/restore/before/{index:02d}": f"v{index}" for index in range(20)}
    assert cluster.get_prefix("/registry/restore/after") == {}, "a write after the snapshot came back"
    revisions = [int(status["header"]["revision"])
                 for status in cluster.statuses(cluster.names).values()]
    assert min(revisions) >= snapshot_revision + bump - 1, (revisions, snapshot_revision, bump)
    assert cluster.put("/registry/restore/afterwards", "ok").ok
    report(request, "revision bumped by", bump)
