"""Benchmark the local backends on real machines; prints figures (never asserts).

- the base image build (`machines/build-local-image`, mmdebstrap from the host's apt mirror);
- boot to cloud-init done with a bare seed (an empty cloud-config and a static address): one
  systemd-nspawn container and one QEMU VM (the QEMU backend's own create script);
- the local stack's 3 members to cloud-init done and to a healthy etcd cluster, as containers
  and as QEMU VMs (the stack's create scripts, in parallel, as `pulumi up` runs them);
- the ratios: stack members' cloud-init / bare boot (what the generated user-data adds: install,
  data disk, units) and VMs / containers.
Needs root. Usage:
    .venv/bin/python bench/local_bench.py [--image DIR] [--no-qemu]
`--image` reuses a built image instead of timing a build.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
for directory in (ROOT, ROOT / "tests"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from guests.commands import build_release_tarball  # noqa: E402
from guests.local_cluster import (  # noqa: E402
    QEMU_SUBNET,
    etcd_bin_dir,
    nspawn_stack,
    qemu_stack,
    wait_healthy,
)
from guests.nspawn import MemberSeed, NspawnCluster  # noqa: E402
from guests.qemu import BridgeNamespace, kill_vm, vm_environment  # noqa: E402
from program import run_program  # noqa: E402

BARE_MAC = "52:54:00:be:0e:01"
BARE_ADDRESS = "192.168.56.50"


@contextlib.contextmanager
def timed(label: str, figures: dict[str, float]) -> Iterator[None]:
    """Record (and print) how long the block took as figures[label]."""
    started = time.monotonic()
    yield
    figures[label] = time.monotonic() - started
    print(f"  {label}: {figures[label]:.1f} s", flush=True)


def bare_seed_documents(name: str) -> tuple[str, str, str]:
    network = {"version": 2, "ethernets": {"etcd0": {
        "match": {"macaddress": BARE_MAC}, "set-name": "etcd0",
        "addresses": [f"{BARE_ADDRESS}/24"]}}}
    return ("#cloud-config\n{}\n",
            yaml.safe_dump({"instance-id": name, "local-hostname": name}),
            yaml.safe_dump(network, sort_keys=False))


def bench_image(args: argparse.Namespace, workdir: Path, figures: dict[str, float]) -> Path:
    if args.image:
        return Path(args.image)
    image = workdir / "image"
    with timed("image build", figures):
        subprocess.run([str(ROOT / "machines" / "build-local-image"), str(image)], check=True,
                       stdout=subprocess.DEVNULL)
    return image


def bench_bare_container(image: Path, workdir: Path, figures: dict[str, float]) -> None:
    user_data, meta_data, network_config = bare_seed_documents("bare")
    seed = MemberSeed(name="bare", mac=BARE_MAC, user_data=user_data, meta_data=meta_data,
                      network_config=network_config, data_device="/dev/disk/by-id/virtio-etcd-data")
    with NspawnCluster(image, [seed], workdir / "bare-container") as machines, \
            timed("bare container: start -> cloud-init done", figures):
        machines.start("bare")
        machines.wait_cloud_init("bare", 600)


def bench_bare_vm(image: Path, workdir: Path, figures: dict[str, float]) -> None:
    user_data, meta_data, network_config = bare_seed_documents("bare-vm")
    bridge = BridgeNamespace(QEMU_SUBNET)
    state = workdir / "bare-vm"
    env = vm_environment("bare-vm", state, mac=BARE_MAC, address=f"{BARE_ADDRESS}/24",
                         gateway=bridge.gateway, image_dir=image, bridge=bridge.bridge,
                         cpus=1, memory_mib=1024)
    env.update({"ETCD_VM_META_DATA": meta_data, "ETCD_VM_NETWORK_CONFIG": network_config})
    try:
        with timed("bare VM: create -> cloud-init done", figures):
            done = bridge.run("machines/qemu/create-vm", env, user_data, timeout=1500)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
    finally:
        bridge.run("machines/qemu/delete-vm", env, timeout=180)
        kill_vm(state, "bare-vm")
        bridge.close()


def bench_stack(kind: str, image: Path, release: tuple[Path, str], workdir: Path,
                figures: dict[str, float], members: int) -> None:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if kind == "containers":
            cluster, _machines = stack.enter_context(nspawn_stack(
                run_program, image, release, members, workdir / "stack-containers"))
        else:
            cluster = stack.enter_context(qemu_stack(
                run_program, image, release, members, workdir / "stack-vms"))
        figures[f"{kind}: cloud-init done on all"] = time.monotonic() - started
        health = wait_healthy(cluster, timeout=600)
        figures[f"{kind}: healthy cluster"] = time.monotonic() - started
        if health.returncode != 0:
            print(health.stdout + health.stderr, file=sys.stderr)
    for label in (f"{kind}: cloud-init done on all", f"{kind}: healthy cluster"):
        print(f"  {label} ({members} members): {figures[label]:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--image", help="a built image directory (skips timing the build)")
    parser.add_argument("--no-qemu", action="store_true", help="containers only")
    parser.add_argument("--members", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="local-bench-", dir="/var/tmp") as temporary:
        workdir = Path(temporary)
        image = bench_image(args, workdir, figures)
        release = build_release_tarball(etcd_bin_dir(), workdir / "release")
        served = (release[0].parent, release[1])
        bench_bare_container(image, workdir, figures)
        bench_stack("containers", image, served, workdir, figures, args.members)
        if not args.no_qemu:
            bench_bare_vm(image, workdir, figures)
            bench_stack("vms", image, served, workdir, figures, args.members)
    print("\nfigure | seconds")
    for label, seconds in figures.items():
        print(f"{label} | {seconds:.1f}")
    pairs = [("containers", "bare container: start -> cloud-init done"),
             ("vms", "bare VM: create -> cloud-init done")]
    for kind, bare in pairs:
        if bare in figures and f"{kind}: healthy cluster" in figures:
            print(f"{kind}: stack cloud-init / bare boot = "
                  f"{figures[f'{kind}: cloud-init done on all'] / figures[bare]:.2f}; "
                  f"healthy / bare boot = {figures[f'{kind}: healthy cluster'] / figures[bare]:.2f}")
    if "vms: healthy cluster" in figures and "containers: healthy cluster" in figures:
        print(f"VMs / containers to a healthy cluster = "
              f"{figures['vms: healthy cluster'] / figures['containers: healthy cluster']:.1f}")


if __name__ == "__main__":
    main()
