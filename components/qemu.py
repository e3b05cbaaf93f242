"""QEMU backend: one VM per member on a host bridge (machines/qemu/ does the work)."""

from __future__ import annotations

import pulumi

from components.local_vms import LocalVmMembers, LocalVmMembersArgs


class QemuMembers(LocalVmMembers):
    def __init__(self, name: str, args: LocalVmMembersArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:QemuMembers", name, args, opts)
