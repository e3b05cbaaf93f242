"""VirtualBox backend: clones of a base VM on a host-only network (machines/virtualbox/)."""

from __future__ import annotations

import pulumi

from components.local_vms import LocalVmMembers, LocalVmMembersArgs


class VirtualBoxMembers(LocalVmMembers):
    def __init__(self, name: str, args: LocalVmMembersArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:VirtualBoxMembers", name, args, opts)
