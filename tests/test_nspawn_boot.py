"""The nspawn harness (tests/guests/nspawn.py) with a trivial hand-written seed: two members
boot the local image as system containers with real systemd and cloud-init, get their static
address on the NIC matched by MAC, reach each other and the gateway, format and mount their data
device with the program's own etcd-prepare-data, keep their state across a restart, and leave
nothing behind."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from guests.image import image_or_skip
from guests.nspawn import MemberSeed, NspawnCluster, Unavailable, cloud_init_problems, tools

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parent.parent
PREPARE_DATA = ROOT / "cloudinit" / "scripts" / "etcd-prepare-data"
GATEWAY = "192.168.56.1/24"
DATA_DEVICE = "/dev/disk/by-id/virtio-etcd-data"
HTTP_PORT = 8080
MEMBERS = {"m1": ("52:54:00:5e:00:11", "192.168.56.11"), "m2": ("52:54:00:5e:00:12", "192.168.56.12")}
SSH_BANNER = ("import socket, sys\n"
              "print(socket.create_connection((sys.argv[1], 22), 5).recv(64).decode())")


def trivial_seed(name: str, mac: str, address: str) -> MemberSeed:
    user_data = {
        "users": ["default", {"name": "etcd", "system": True, "homedir": "/var/lib/etcd",
                              "no_create_home": True, "shell": "/usr/sbin/nologin",
                              "lock_passwd": True}],
        # The same fstab entry and data-volume script as the program's members.
        "mounts": [["LABEL=etcd-data", "/var/lib/etcd", "ext4",
                    "defaults,noatime,nofail,x-systemd.device-timeout=600s", "0", "2"]],
        "write_files": [
            {"path": "/etc/trivial-seed", "content": f"hello from {name}\n", "permissions": "0644"},
            {"path": "/usr/local/sbin/etcd-prepare-data", "content": PREPARE_DATA.read_text(),
             "permissions": "0755"},
        ],
        "runcmd": [
            ["set", "-e"],
            ["echo", f"trivial runcmd ran on {name}"],
            ["sh", "-c", "echo ran >> /var/tmp/runcmd-count"],
            ["/usr/local/sbin/etcd-prepare-data", DATA_DEVICE, "etcd-data", "/var/lib/etcd",
             "/var/lib/etcd/member"],
        ],
    }
    network_config = {"version": 2, "ethernets": {"etcd0": {
        "match": {"macaddress": mac}, "set-name": "etcd0", "addresses": [f"{address}/24"]}}}
    return MemberSeed(
        name=name, mac=mac,
        user_data="#cloud-config\n" + yaml.safe_dump(user_data, sort_keys=False),
        meta_data=yaml.safe_dump({"instance-id": f"{name}-trivial", "local-hostname": name}),
        network_config=yaml.safe_dump(network_config, sort_keys=False),
        data_device=DATA_DEVICE)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        tools()
    except Unavailable as missing:
        pytest.skip(str(missing))
    return image_or_skip(tmp_path_factory)


def report(name: str, value: object) -> None:
    print(f"[nspawn] {name}: {value}", file=sys.stderr)


def boot_all(cluster: NspawnCluster) -> dict[str, float]:
    """Start every member, wait for cloud-init; seconds from start to cloud-init done."""
    started = time.monotonic()
    cluster.start_all()

    def wait(name: str) -> float:
        cluster.wait_cloud_init(name, timeout=300)
        return time.monotonic() - started

    with ThreadPoolExecutor(len(cluster.members)) as pool:
        return dict(zip(cluster.members, pool.map(wait, cluster.members), strict=True))


def test_members_boot_network_data_restart_and_teardown(image: Path,
                                                         tmp_path: Path) -> None:
    seeds = [trivial_seed(name, mac, address) for name, (mac, address) in MEMBERS.items()]
    cluster = NspawnCluster(image, seeds, tmp_path / "nspawn", GATEWAY)
    prefix = cluster.prefix
    try:
        booted = boot_all(cluster)
        report("start to cloud-init done (2 members in parallel), s",
               {name: round(seconds, 1) for name, seconds in booted.items()})

        for name, (mac, address) in MEMBERS.items():
            status = cluster.exec(name, ["cloud-init", "status", "--long"], check=True).stdout
            assert cloud_init_problems(status) == [], status
            assert cluster.cloud_init_log_problems(name) == []
            assert re.search(r"Cloud-init v\. .* finished at", cluster.console_log(name))
            assert f"trivial runcmd ran on {name}" in cluster.console_log(name)
            assert cluster.exec(name, ["cat", "/etc/trivial-seed"]).stdout == f"hello from {name}\n"
            assert cluster.exec(name, ["hostname"]).stdout.strip() == name
            # The static address is on the NIC with the seed's MAC, renamed as network-config says.
            links = json.loads(cluster.exec(name, ["ip", "-j", "addr", "show", "etcd0"],
                                            check=True).stdout)
            assert links[0]["address"] == mac
            assert f"{address}/24" in {f"{a['local']}/{a['prefixlen']}" for a in links[0]["addr_info"]}
            # The data device: formatted once by etcd-prepare-data, mounted at /var/lib/etcd.
            mounted = cluster.exec(name, ["findmnt", "-n", "-o", "FSTYPE", "/var/lib/etcd"]).stdout
            assert mounted.strip() == "ext4"
            data_dir = cluster.exec(name, ["stat", "-c", "%U %a", "/var/lib/etcd/member"]).stdout
            assert data_dir.strip() == "etcd 700"
            failed = cluster.exec(name, ["systemctl", "--failed", "--no-legend"]).stdout
            assert failed.strip() == ""

        # The members reach each other and the gateway; the gateway's namespace serves HTTP.
        gateway = str(ipaddress.ip_interface(GATEWAY).ip)
        assert cluster.exec("m1", ["ping", "-c", "2", "-W", "2", MEMBERS["m2"][1]]).returncode == 0
        assert cluster.exec("m2", ["ping", "-c", "2", "-W", "2", MEMBERS["m1"][1]]).returncode == 0
        # (the host has no ping: read m1's SSH banner from the gateway's namespace instead)
        banner = cluster.run_in_bridge_ns([sys.executable, "-c", SSH_BANNER, MEMBERS["m1"][1]])
        assert banner.stdout.startswith("SSH-2.0-"), banner
        served = tmp_path / "served"
        served.mkdir()
        (served / "release.txt").write_text("a release\n")
        server = cluster.popen_in_bridge_ns(
            [sys.executable, "-m", "http.server", "--bind", gateway, "--directory", str(served),
             str(HTTP_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        fetched = ""
        for _ in range(50):
            fetched = cluster.exec("m2", ["curl", "-fsS", f"http://{gateway}:{HTTP_PORT}/release.txt"]).stdout
            if fetched:
                break
            time.sleep(0.2)
        assert fetched == "a release\n"
        server.terminate()

        # A restart keeps the root filesystem and the data, and the data is mounted at boot
        # (from fstab, before cloud-init or any script), like a rebooted VM.
        cluster.exec("m1", ["sh", "-c", "echo kept > /var/lib/etcd/member/marker"], check=True)
        cluster.stop("m1")
        assert not cluster.running("m1")
        restarted = time.monotonic()
        cluster.start("m1")
        cluster.wait_booted("m1", timeout=120)
        cluster.wait_cloud_init("m1", timeout=300)
        report("restart to cloud-init done, s", round(time.monotonic() - restarted, 1))
        assert cluster.exec("m1", ["cat", "/var/lib/etcd/member/marker"]).stdout == "kept\n"
        mount_unit = cluster.exec("m1", ["systemctl", "is-active", "var-lib-etcd.mount"]).stdout
        assert mount_unit.strip() == "active"
        # cloud-init knows the instance: runcmd (per instance) did not run again.
        assert cluster.exec("m1", ["cat", "/var/tmp/runcmd-count"]).stdout == "ran\n"
        assert cluster.cloud_init_log_problems("m1") == []
        assert cluster.exec("m1", ["ping", "-c", "2", "-W", "2", MEMBERS["m2"][1]]).returncode == 0
    finally:
        cluster.close()

    # Nothing left behind: namespaces, loop devices, processes.
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in namespaces
    backing_files = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
                                   capture_output=True, text=True).stdout
    assert prefix not in backing_files
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert prefix not in processes
