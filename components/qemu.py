"""QEMU backend: one VM per member on a host bridge (machines/qemu/ does the work)."""

from __future__ import annotations

import pulumi

from components.local_vms import LocalVmMembers
from model.settings import Settings
from model.topology import Topology


class QemuMembers(LocalVmMembers):
    def __init__(self, name: str, settings: Settings, topology: Topology,
                 user_data: dict[str, pulumi.Output[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:QemuMembers", name, settings, topology, user_data, opts)
