"""What every node backend gives back: per member, the machine's addresses.

DigitalOcean, QEMU and VirtualBox each create machines in a file of their own (digitalocean.py,
qemu.py, virtualbox.py) from args of their own; `cluster.py` picks one by the backend and reads
only `machines`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class MemberMachine:
    private_ipv4: pulumi.Output[str]
    # None where the machine has no public address (local VMs).
    public_ipv4: pulumi.Output[str] | None
