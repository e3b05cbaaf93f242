"""The node-backend interface: members (and their user-data) in, per-member addresses out.

DigitalOcean, QEMU and VirtualBox each implement it in a file of their own (digitalocean.py,
qemu.py, virtualbox.py); `cluster.py` picks one by the `backend` setting and never looks inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pulumi

from model.settings import Settings
from model.topology import Topology


@dataclass(frozen=True)
class MemberMachine:
    private_ipv4: pulumi.Output[str]
    # None where the machine has no public address (local VMs).
    public_ipv4: pulumi.Output[str] | None


class NodeBackend(Protocol):
    """A component resource class that creates one machine per member."""

    machines: dict[str, MemberMachine]

    def __init__(self, name: str, settings: Settings, topology: Topology,
                 user_data: dict[str, pulumi.Output[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None: ...

