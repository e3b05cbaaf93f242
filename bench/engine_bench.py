"""Benchmark the program under the real Pulumi engine; prints figures (never asserts).

- the toolchain: a cold build (empty Go module and build caches, `--cold-build`) or the figures
  recorded by the last build (build-info);
- `pulumi preview` wall time of a new stack at 3 and 7 members, and the ratio. The DigitalOcean
  stack cannot be previewed here (its provider plugins cannot be built from the module proxy:
  README, "The Pulumi toolchain"), so the local stack's preview stands in: same program, same
  PKI, one `command` resource per member instead of droplets, volumes and records;
- `pulumi up` of the local stack (3 QEMU VMs) to a healthy cluster, against a bare VM's boot to
  cloud-init done (bench/local_bench.py's seed), and the ratio;
- a second `pulumi up` with no changes;
- a `pulumi up` that rolls renewed certificates out to the 3 running members, and per member;
- a `pulumi up` that rolls a flag change out (each member's etcd restarted in turn), per member;
- with `--membership` (instead of the above after the toolchain): a 5-member local stack shrunk
  to 3 by `pulumi up` (per member removed) and one member replaced by `replaceMember`, each
  under a client writing through `etcd_servers` (writes acknowledged, acknowledged-but-lost).
Needs root (namespaces, the bridge). Usage:
    .venv/bin/python bench/engine_bench.py [--image DIR] [--cold-build] [--no-up] [--membership]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for directory in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from engine import (  # noqa: E402
    BUILD_SCRIPT,
    OutputsClient,
    Project,
    continuous_writer,
    local_engine_stack,
    offline_local_config,
    scratch_dir,
)
from guests.commands import build_release_tarball  # noqa: E402
from guests.local_cluster import etcd_bin_dir  # noqa: E402
from local_bench import bench_bare_vm, bench_image, timed  # noqa: E402


def toolchain(cold: bool, workdir: Path, figures: dict[str, float]) -> Path:
    if not cold:
        built = Path(subprocess.run([str(BUILD_SCRIPT)], check=True, capture_output=True,
                                    text=True).stdout.strip())
        info = json.loads((built / "build-info").read_text())
        print(f"  toolchain (last build, as recorded): {info['seconds']}, {info['size_mib']} MiB")
        return built
    env = {**os.environ, "ETCD_PULUMI_TOOLCHAIN_CACHE": str(workdir / "toolchain"),
           "GOMODCACHE": str(workdir / "gomod"), "GOCACHE": str(workdir / "gocache")}
    with timed("toolchain: cold build", figures):
        done = subprocess.run([str(BUILD_SCRIPT)], env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"the toolchain build failed ({done.returncode}): its output is above")
    built = Path(done.stdout.strip())
    info = json.loads((built / "build-info").read_text())
    print(f"  toolchain parts: {info['seconds']}, {info['size_mib']} MiB")
    return built


def bench_previews(tools: Path, figures: dict[str, float]) -> None:
    for members in (3, 7):
        with scratch_dir("engine-bench-preview-") as directory:
            project = Project(directory, tools)
            project.init_stack("bench", offline_local_config(directory, members=members))
            with timed(f"preview, {members} members", figures):
                project.pulumi("preview", "--stack", "bench")
    print(f"  preview 7 / 3 members = {figures['preview, 7 members'] / figures['preview, 3 members']:.2f}")


def bench_up(tools: Path, image: Path, workdir: Path, figures: dict[str, float]) -> None:
    release = build_release_tarball(etcd_bin_dir(), workdir / "release")
    served = (release[0].parent, release[1])
    with scratch_dir("engine-bench-up-") as directory, local_engine_stack(
            tools, image, served, directory, "bench") as local:
        with timed("pulumi up of the local stack (3 VMs) to a healthy cluster", figures):
            local.pulumi("up", "--yes", "--skip-preview")
            client = OutputsClient(local.project.outputs("bench"), local.namespace,
                                   directory / "client")
            health = client.wait_healthy()
        if health.returncode != 0:
            print(health.stdout + health.stderr, file=sys.stderr)
        with timed("second pulumi up, no changes", figures):
            local.pulumi("up", "--yes", "--skip-preview", "--expect-no-changes")
        # Renewed certificates rolled out to the 3 running members, one after another.
        local.pulumi("config", "set", "certValidityHours", "8000")
        with timed("pulumi up rolling renewed certificates out to 3 members", figures):
            local.pulumi("up", "--yes", "--skip-preview")
        figures["certificate rollout, per member"] = (
            figures["pulumi up rolling renewed certificates out to 3 members"] / 3)
        # A tuning change: each member's unit rewritten and etcd restarted, one after another.
        local.pulumi("config", "set", "snapshotCount", "20000")
        with timed("pulumi up rolling a flag change out to 3 members (3 restarts)", figures):
            local.pulumi("up", "--yes", "--skip-preview")
        figures["flag-change rollout, per member"] = (
            figures["pulumi up rolling a flag change out to 3 members (3 restarts)"] / 3)
        with timed("pulumi destroy", figures):
            local.pulumi("destroy", "--yes", "--skip-preview", timeout=900)


def lost_writes(client: OutputsClient, prefix: str, acknowledged: Path) -> tuple[int, int]:
    """(writes acknowledged, acknowledged writes not in the cluster)."""
    written = {int(line) for line in acknowledged.read_text().split()}
    keys = client.apiserver("get", prefix, "--prefix", "--keys-only")
    stored = {int(key.removeprefix(prefix)) for key in keys.stdout.split()}
    return len(written), len(written - stored)


def voting_members(client: OutputsClient) -> list[str]:
    listed = json.loads(client.apiserver("member", "list", "-w", "json").stdout)["members"]
    return sorted(member.get("name", "") for member in listed if not member.get("isLearner"))


def bench_membership(tools: Path, image: Path, workdir: Path, figures: dict[str, float]) -> None:
    release = build_release_tarball(etcd_bin_dir(), workdir / "release")
    served = (release[0].parent, release[1])
    with scratch_dir("engine-bench-membership-") as directory, local_engine_stack(
            tools, image, served, directory, "bench", members=5) as local:
        with timed("pulumi up of the local stack (5 VMs) to a healthy cluster", figures):
            local.pulumi("up", "--yes", "--skip-preview", timeout=2400)
            client = OutputsClient(local.project.outputs("bench"), local.namespace,
                                   directory / "client-5")
            client.wait_healthy()
        local.pulumi("config", "set", "memberCount", "3")
        with continuous_writer(client, "/bench/shrink/") as written, timed(
                "pulumi up shrinking 5 -> 3 members", figures):
            local.pulumi("up", "--yes", "--skip-preview", timeout=2400)
        figures["shrink, per member removed"] = figures["pulumi up shrinking 5 -> 3 members"] / 2
        shrunk = OutputsClient(local.project.outputs("bench"), local.namespace,
                               directory / "client-3")
        acknowledged, lost = lost_writes(shrunk, "/bench/shrink/", written)
        print(f"  shrink: voting members {voting_members(shrunk)}, VMs left "
              f"{sorted(path.name for path in local.vms.iterdir())}, writes acknowledged "
              f"{acknowledged}, lost {lost}", flush=True)
        local.pulumi("config", "set", "replaceMember", "etcd-2")
        with continuous_writer(shrunk, "/bench/replace/") as written, timed(
                "pulumi up replacing etcd-2", figures):
            local.pulumi("up", "--yes", "--skip-preview", timeout=2400)
        acknowledged, lost = lost_writes(shrunk, "/bench/replace/", written)
        print(f"  replacement: voting members {voting_members(shrunk)}, writes acknowledged "
              f"{acknowledged}, lost {lost}", flush=True)
        with timed("pulumi destroy", figures):
            local.pulumi("destroy", "--yes", "--skip-preview", timeout=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--image", help="a built image directory (skips building one)")
    parser.add_argument("--cold-build", action="store_true",
                        help="time a toolchain build with empty Go caches (downloads every module)")
    parser.add_argument("--no-up", action="store_true", help="previews only: boot no VM")
    parser.add_argument("--membership", action="store_true",
                        help="only the shrink 5 -> 3 and a replacement under the engine")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="engine-bench-", dir="/var/tmp") as temporary:
        workdir = Path(temporary)
        tools = toolchain(args.cold_build, workdir, figures)
        if args.membership:
            bench_membership(tools, bench_image(args, workdir, figures), workdir, figures)
        else:
            bench_previews(tools, figures)
        if not args.no_up and not args.membership:
            image = bench_image(args, workdir, figures)
            bench_bare_vm(image, workdir, figures)
            bench_up(tools, image, workdir, figures)
    print("\nfigure | seconds")
    for label, seconds in figures.items():
        print(f"{label} | {seconds:.1f}")
    up = "pulumi up of the local stack (3 VMs) to a healthy cluster"
    bare = "bare VM: create -> cloud-init done"
    if up in figures and bare in figures:
        print(f"pulumi up to a healthy cluster / bare VM boot = {figures[up] / figures[bare]:.2f}")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(bench ran {time.monotonic() - started:.0f} s)")
