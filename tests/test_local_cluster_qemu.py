"""The whole chain on whole machines, one smoke scenario: the local stack's own pulumi-command
create scripts boot 3 QEMU VMs (real kernel, real cloud-init from the seed ISO, real systemd)
that install etcd through the generated install path and form a healthy cluster; then the
stack's delete scripts remove every VM and every file.

The scripts run as pulumi-command runs them (tests/guests/commands.py): `/bin/sh
machines/qemu/create-vm` in the project directory, the member's user-data on stdin, the
resource's environment. They run inside a network namespace holding the stack's bridge
(tests/guests/qemu.py), so the host's network is never touched. Under software emulation
(these machines: KVM cannot boot a guest) this takes about 3-6 minutes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from guests.local_cluster import qemu_stack, wait_healthy
from guests.qemu import missing_for_real_vm, qemu_pid

pytestmark = pytest.mark.real


def test_three_qemu_vms_form_a_healthy_cluster_and_delete_removes_every_vm_and_file(
        program: Any, local_image: Path, etcd_release: tuple[Path, str], tmp_path: Path) -> None:
    missing = missing_for_real_vm(local_image)
    if missing:
        pytest.skip(missing)
    with qemu_stack(program, local_image, etcd_release, 3, tmp_path) as cluster:
        health = wait_healthy(cluster)
        assert health.returncode == 0, health.stdout + health.stderr
        members = json.loads(cluster.run_etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert sorted(member["name"] for member in members) == ["etcd-1", "etcd-2", "etcd-3"]
        cluster.run_etcdctl("put", "/registry/e2e/qemu", "whole-machine")
        got = cluster.run_etcdctl("get", "/registry/e2e/qemu", "--print-value-only")
        assert got.stdout.strip() == "whole-machine"
        vms = [(Path(command.environment["ETCD_VM_STATE_DIR"]), command.environment["ETCD_VM_NAME"])
               for command in cluster.commands]
    # Leaving qemu_stack ran the stack's delete scripts, as `pulumi destroy` would; they must have
    # left no VM process and no VM file (the exit code of each is checked there).
    for state_dir, name in vms:
        assert qemu_pid(state_dir, name) is None, f"{name} still running"
        assert not state_dir.exists(), f"{state_dir} left behind"
    # The last delete also removes the KVM probe's cached answer and the emptied directory.
    vms_dir = vms[0][0].parent
    assert not vms_dir.exists(), sorted(path.name for path in vms_dir.iterdir())
