"""The whole chain on real machines, fast layer: the program's user-data for a local stack ->
real cloud-init -> real systemd -> etcd installed by the generated install path -> a healthy
cluster, with members booted as systemd-nspawn system containers of the local image.

Each member is the container the QEMU backend would boot as a VM: the same image, the same seed
documents (user-data, meta-data, network-config from the member's pulumi-command inputs), a data
block device at the path the QEMU backend attaches it. etcd is installed by the member's own
etcd-install from a release tarball (built from the real etcd 3.5.1 binaries) served by the host
on the members' network, verified against the SHA-256 in the stack's settings.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from guests.local_cluster import LocalCluster, nspawn_stack, wait_healthy
from guests.nspawn import NspawnCluster, Unavailable, cloud_init_problems

pytestmark = pytest.mark.real



@contextlib.contextmanager
def containers(program: Callable[..., Any], image: Path, release: tuple[Path, str], members: int,
               workdir: Path) -> Iterator[tuple[LocalCluster, NspawnCluster]]:
    """The booted stack; skips only when setting it up finds this machine cannot run it. Once
    it is up, whatever the test body raises (Unavailable included) is the test's result."""
    with contextlib.ExitStack() as stack:
        try:
            up = stack.enter_context(nspawn_stack(program, image, release, members, workdir))
        except Unavailable as missing:
            pytest.skip(str(missing))
        yield up


@pytest.fixture(scope="module")
def three(program: Any, local_image: Path, etcd_release: tuple[Path, str],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, NspawnCluster]]:
    with containers(program, local_image, etcd_release, 3, tmp_path_factory.mktemp("nspawn3")) as up:
        yield up


def test_three_members_form_a_healthy_cluster_from_their_user_data(three: Any) -> None:
    cluster, _machines = three
    health = wait_healthy(cluster)
    assert health.returncode == 0, health.stdout + health.stderr
    members = json.loads(cluster.run_etcdctl("member", "list", "-w", "json").stdout)["members"]
    assert sorted(member["name"] for member in members) == ["etcd-1", "etcd-2", "etcd-3"]


def test_cloud_init_finishes_clean_on_every_member(three: Any) -> None:
    cluster, machines = three
    for name in machines.members:
        status = cluster.cloud_init_status[name]
        assert cloud_init_problems(status) == [], status
        assert "status: done" in status


def test_the_exported_endpoints_and_apiserver_cert_read_and_write_from_the_host(three: Any) -> None:
    cluster, _machines = three
    wait_healthy(cluster)
    cluster.run_etcdctl("put", "/registry/e2e/from-host", "written-through-etcd_servers")
    for endpoint in cluster.run.output("endpoints"):
        got = cluster.run_etcdctl("get", "/registry/e2e/from-host", "--print-value-only",
                      endpoints=[endpoint])
        assert got.stdout.strip() == "written-through-etcd_servers", endpoint


def test_etcd_runs_from_the_verified_release_as_the_etcd_user_on_the_data_disk(three: Any) -> None:
    _cluster, machines = three
    for name in machines.members:
        version = machines.exec(name, ["/usr/local/bin/etcd", "--version"], check=True).stdout
        assert "etcd Version: 3.5.1" in version
        unit = machines.exec(name, ["systemctl", "show", "etcd.service", "-p", "ActiveState",
                                    "-p", "User", "-p", "Type"], check=True).stdout
        assert "ActiveState=active" in unit and "User=etcd" in unit and "Type=notify" in unit
        mount = machines.exec(name, ["findmnt", "-n", "-o", "LABEL,FSTYPE", "/var/lib/etcd"],
                              check=True).stdout.split()
        assert mount == ["etcd-data", "ext4"], name
        # The unit's --data-dir (on the data disk), which etcd has created by now: etcd's, 0700.
        data_dir = "/var/lib/etcd/data"
        assert f"--data-dir={data_dir}" in machines.exec(
            name, ["systemctl", "show", "etcd.service", "-p", "ExecStart"], check=True).stdout
        mode = machines.exec(name, ["stat", "-c", "%U %a", data_dir], check=True).stdout.strip()
        assert mode == "etcd 700", (name, mode)


def test_member_names_resolve_from_etc_hosts_inside_every_member(three: Any) -> None:
    cluster, machines = three
    expected = {member["fqdn"]: member["private_ipv4"] for member in cluster.run.output("members")}
    for name in machines.members:
        for fqdn, address in expected.items():
            found = machines.exec(name, ["getent", "ahostsv4", fqdn], check=True).stdout.split()
            assert found[0] == address, (name, fqdn)


def test_a_restarted_member_keeps_its_data_and_rejoins(three: Any) -> None:
    cluster, machines = three
    wait_healthy(cluster)
    cluster.run_etcdctl("put", "/registry/e2e/before-restart", "kept")
    before = json.loads(cluster.run_etcdctl("member", "list", "-w", "json").stdout)["members"]
    machines.restart("etcd-2")
    machines.wait_booted("etcd-2")
    health = wait_healthy(cluster)
    assert health.returncode == 0, health.stdout + health.stderr
    after = json.loads(cluster.run_etcdctl("member", "list", "-w", "json").stdout)["members"]
    assert {m["name"]: m["ID"] for m in after} == {m["name"]: m["ID"] for m in before}
    # Served by etcd-2 itself, from the data it kept (a serializable read is answered locally).
    got = cluster.run_etcdctl("get", "/registry/e2e/before-restart", "--print-value-only",
                  "--consistency=s", endpoints=[cluster.endpoint("etcd-2")])
    assert got.stdout.strip() == "kept"
    # A reboot is not a first boot: cloud-init did not run the user-data again. Its per-boot
    # stages still run after every boot, and etcd can be healthy before they finish (status
    # "running"): wait for them, as for a first boot, before reading how they ended.
    status = machines.wait_cloud_init("etcd-2", timeout=300)
    assert cloud_init_problems(status) == [], status
    install_runs = machines.exec("etcd-2", ["grep", "-c", "etcd-install: installed etcd",
                                            "/var/log/cloud-init-output.log"]).stdout.strip()
    assert install_runs == "1"


def test_five_members_form_a_healthy_cluster(program: Any, local_image: Path,
                                             etcd_release: tuple[Path, str], tmp_path: Path) -> None:
    with containers(program, local_image, etcd_release, 5, tmp_path) as (cluster, machines):
        health = wait_healthy(cluster)
        assert health.returncode == 0, health.stdout + health.stderr
        members = json.loads(cluster.run_etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert len(members) == 5
        for name in machines.members:
            assert cloud_init_problems(cluster.cloud_init_status[name]) == []
