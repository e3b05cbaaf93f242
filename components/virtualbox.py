"""VirtualBox backend: clones of a base VM on a host-only network (machines/virtualbox/)."""

from __future__ import annotations

import pulumi

from components.local_vms import LocalVmMembers
from model.settings import Settings
from model.topology import Topology


class VirtualBoxMembers(LocalVmMembers):
    def __init__(self, name: str, settings: Settings, topology: Topology,
                 user_data: dict[str, pulumi.Output[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:VirtualBoxMembers", name, settings, topology,
                         user_data, opts)
