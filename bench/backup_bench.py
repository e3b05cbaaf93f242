"""Benchmark a backup to object storage and a restore from it on real etcd, as the members run
them; prints figures (never asserts).

Per etcd line (3.4 Debian's etcd-server, 3.6 built by scripts/build-etcd-releases) and per key
count: a 3-member rendering of this program (tests/realcluster), started and healthy, and the
Versity S3 Gateway on its network (tests/realcluster/objectstore.py). N keys of 1 KiB of random
hex are written first (etcdctl txn batches of 128 puts, several etcdctl processes at once; not
timed as part of the backup). Then `etcd-backup` runs on the leader as its timer runs it (as root
in the member's namespace, backup.env for the store, the member's unit): printed, its seconds,
the snapshot's size, keys and revision (from its output), the sealed object's size in the bucket
and the script's own etcd_backup_last_duration_seconds. Then the cluster is stopped and, on each
member, `etcd-backup --fetch latest --output FILE` and `etcd-restore --snapshot FILE` run (with
`--bump-revision 1000000000` where the restore tool has it): printed, each member's seconds and
their max and mean; then the start until every member is healthy, and the keys read back.
Needs root (network namespaces), rclone and the S3 server ($ETCD_S3_SERVER or
scripts/build-s3-server). Usage:
    .venv/bin/python bench/backup_bench.py [--lines 3.4,3.6] [--keys 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for directory in (ROOT, ROOT / "tests"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from figures import format_figure  # noqa: E402

PREFIX = "/bench/backup/"
BUCKET_PREFIX = "stack/backups"
LINES = ("3.4", "3.6")
KEYS = (10000, 100000)
VALUE_BYTES = 1024
# etcd's default --max-txn-ops (the program sets none): the most puts one txn may hold.
TXN_OPS = 128
WRITERS = 4
BUMP = 1_000_000_000
UPLOADED = re.compile(r"uploaded (\S+) \((\d+) bytes, (\d+) keys, revision (\d+)\)")


class BenchFailure(RuntimeError):
    pass


def measure(line: str, keys: int) -> dict[str, Any]:
    from program import run_program
    from realcluster.backups import RESTORE, metrics, restore_env, run_backup
    from realcluster.harness import Cluster, Result, artifacts_of, program_config
    from realcluster.objectstore import ObjectStore
    from realcluster.rollout import MemberScripts
    from realcluster.tools import etcd_release

    def ok(result: Result, what: str) -> Result:
        if not result.ok:
            raise BenchFailure(f"{what} failed:\n{result}")
        return result

    def tool_has(tool: Path, flag: str, *command: str) -> bool:
        shown = subprocess.run([str(tool), *command, "--help"], capture_output=True, text=True,
                               timeout=60)
        return flag in shown.stdout + shown.stderr

    def etcdctl_argv(*args: str, command_timeout: float = 60) -> list[str]:
        """etcdctl of the line in the client namespace, as Cluster.etcdctl runs it."""
        return [str(cluster.release.etcdctl), f"--endpoints={','.join(cluster.endpoints())}",
                f"--cacert={cluster.ca}", f"--cert={cluster.cert}", f"--key={cluster.key}",
                f"--command-timeout={command_timeout}s", "--dial-timeout=5s", *args]

    def write_keys() -> None:
        """`keys` keys under PREFIX, TXN_OPS puts per etcdctl txn, WRITERS txns at once."""
        def batch(start: int) -> None:
            puts = "".join(f"put {PREFIX}{index:07d} {os.urandom(VALUE_BYTES // 2).hex()}\n"
                           for index in range(start, min(start + TXN_OPS, keys)))
            # No compares, the puts on success, no failure requests.
            done = cluster.in_client(etcdctl_argv("txn"), stdin=f"\n{puts}\n\n", timeout=180)
            if not done.ok or not done.stdout.startswith("SUCCESS"):
                raise BenchFailure(f"writing the keys from {start} failed:\n{done}")

        pool = ThreadPoolExecutor(WRITERS)
        try:
            for future in [pool.submit(batch, start) for start in range(0, keys, TXN_OPS)]:
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def key_count() -> int | str:
        """The keys under PREFIX (--count-only where etcdctl has it; 3.4: --keys-only lines)."""
        if count_only:
            # etcdctl allows --count-only with `-w fields` only: a line `"Count" : N`.
            counted = cluster.in_client(etcdctl_argv("get", PREFIX, "--prefix", "--count-only",
                                                     "-w", "fields"), timeout=120)
            found = re.search(r'^"Count" : (\d+)$', counted.stdout, re.MULTILINE)
            if counted.ok and found is not None:
                return int(found.group(1))
        else:
            counted = cluster.in_client(etcdctl_argv("get", PREFIX, "--prefix", "--keys-only"),
                                        timeout=300)
            if counted.ok:
                return sum(1 for key in counted.stdout.splitlines() if key)
        return f"read failed: {counted.output.splitlines()[-1:]}"

    def leader() -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = cluster.leader()
            if found is not None:
                return found
            time.sleep(0.5)
        raise BenchFailure("the members agree on no leader within 60 s")

    def backup_run(name: str, *args: str) -> Result:
        return run_backup(scripts[name], store, BUCKET_PREFIX, encryption_key, *args,
                          timeout=1200)

    cluster = Cluster(artifacts_of(run_program(program_config(line, 3))), etcd_release(line))
    figures: dict[str, Any] = {"version": cluster.release.version}
    closers = [cluster.close]
    try:
        cluster.start()
        cluster.wait_ready(timeout=300)
        cluster.wait_healthy(timeout=300)
        store = ObjectStore(cluster)
        closers.append(store.close)
        scripts = {name: MemberScripts(cluster, member) for name, member in cluster.members.items()}
        encryption_key = secrets.token_urlsafe(32)
        count_only = tool_has(cluster.release.etcdctl, "--count-only", "get")
        can_bump = tool_has(cluster.release.restore_tool, "--bump-revision", "snapshot", "restore")

        started = time.monotonic()
        write_keys()
        figures[f"writing {keys} keys of {VALUE_BYTES} B s"] = time.monotonic() - started
        figures["keys before the backup"] = key_count()

        # --- the backup, on the leader -------------------------------------------------------
        for attempt in range(1, 4):
            taker = leader()
            backup = ok(backup_run(taker), f"etcd-backup on {taker}")
            if "uploaded" in backup.stdout:
                break
            # Leadership moved between asking and the run: the script says so and succeeds.
            print(f"  ({taker} no longer led at attempt {attempt}: {backup.stdout.strip()})",
                  flush=True)
        else:
            raise BenchFailure(f"etcd-backup never ran on the leader:\n{backup}")
        uploaded = UPLOADED.search(backup.stdout)
        if uploaded is None:
            raise BenchFailure(f"etcd-backup printed no upload line:\n{backup}")
        name, size, snapshot_keys, revision = uploaded.groups()
        figures["backup taken on"] = taker
        figures["backup s"] = backup.seconds
        figures["backup s (its metric, whole s)"] = metrics(cluster.members[taker]).get(
            "etcd_backup_last_duration_seconds", "missing")
        figures["snapshot bytes"] = int(size)
        figures["sealed object bytes"] = len(store.objects(BUCKET_PREFIX).get(f"{name}.bin", b""))
        figures["snapshot keys"] = int(snapshot_keys)
        figures["snapshot revision"] = int(revision)

        # --- every member lost its data: fetch and restore on each ---------------------------
        started = time.monotonic()
        cluster.stop()
        figures["stopping the cluster s"] = time.monotonic() - started
        bump = ["--bump-revision", str(BUMP)] if can_bump else []
        figures["revision bumped by"] = BUMP if can_bump else "no (the restore tool cannot)"
        fetches: list[float] = []
        restores: list[float] = []
        for member_name, member in cluster.members.items():
            output = member.path("/root/snapshot.db")
            output.parent.mkdir(mode=0o700, exist_ok=True)
            output.unlink(missing_ok=True)
            fetched = ok(backup_run(member_name, "--fetch", "latest", "--output", str(output)),
                         f"etcd-backup --fetch on {member_name}")
            restored = ok(scripts[member_name].run(
                RESTORE, "--snapshot", str(output), *bump, timeout=1200, env={
                    **restore_env(member),
                    "ETCD_OWNER": f"{member.run_as.uid}:{member.run_as.gid}",
                }), f"etcd-restore on {member_name}")
            fetches.append(fetched.seconds)
            restores.append(restored.seconds)
            figures[f"{member_name} fetch s / restore s"] = (
                f"{fetched.seconds:.2f} / {restored.seconds:.2f}")
        figures["fetch s max / mean"] = f"{max(fetches):.2f} / {statistics.mean(fetches):.2f}"
        figures["restore s max / mean"] = f"{max(restores):.2f} / {statistics.mean(restores):.2f}"

        # --- the cluster back --------------------------------------------------------------------
        started = time.monotonic()
        cluster.start()
        ready = cluster.wait_ready(timeout=600)
        healthy = cluster.wait_healthy(timeout=600)
        figures["start until healthy s"] = time.monotonic() - started
        figures["  of which READY=1 s / healthy after s"] = f"{ready:.2f} / {healthy:.2f}"
        figures["keys after the restore"] = key_count()
        revisions = [int(status["header"]["revision"])
                     for status in cluster.statuses(cluster.names).values()]
        figures["revision after the restore"] = max(revisions) if revisions else "no status"
    finally:
        for close in reversed(closers):
            close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default=",".join(LINES), help="etcd lines, comma-separated")
    parser.add_argument("--keys", default=",".join(map(str, KEYS)),
                        help="key counts, comma-separated")
    args = parser.parse_args()
    counts = [int(count) for count in args.keys.split(",")]

    from realcluster.harness import ClusterError
    from realcluster.objectstore import rclone_binary, s3_server_binary
    from realcluster.tools import Unavailable, etcd_release, require_namespaces, tools
    try:
        require_namespaces()
        tools()
        rclone_binary()
        s3_server_binary()
    except Unavailable as missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    print(f"backup benchmark on {os.cpu_count()} CPUs; timings vary up to 2x between runs")
    results: dict[str, Any] = {}
    for line in args.lines.split(","):
        try:
            etcd_release(line)
        except Unavailable as missing:
            print(f"\n== etcd {line}: skipped: {missing}", flush=True)
            continue
        for keys in counts:
            print(f"\n== etcd {line}, {keys} keys: etcd-backup on the leader, then "
                  "etcd-backup --fetch and etcd-restore on every member", flush=True)
            try:
                figures = measure(line, keys)
            except (BenchFailure, ClusterError) as failure:
                print(f"  FAILED: {failure}", flush=True)
                results[f"{line} {keys}"] = {"failed": str(failure)}
                continue
            for name, value in figures.items():
                print(f"  {name:40} {format_figure(value)}", flush=True)
            results[f"{line} {keys}"] = figures
    print("\n" + json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
