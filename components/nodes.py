"""What every node backend gives back: per member, the machine's addresses.

DigitalOcean, QEMU and VirtualBox each create machines in a file of their own (digitalocean.py,
qemu.py, virtualbox.py) from args of their own; `cluster.py` picks one by the backend and reads
only `machines`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi


@dataclass(frozen=True)
class MemberMachine:
    private_ipv4: pulumi.Output[str]
    # None where the machine has no public address (local VMs).
    public_ipv4: pulumi.Output[str] | None


@dataclass(frozen=True)
class MachineReplacement:
    """How each backend replaces one member's machine (model/replacement.py): every machine's
    generation is its `replacement_trigger` (from its creation: the engine does not replace a
    resource for its first trigger), raised for the member an update replaces; the machine is
    deleted before its replacement is created (it takes the old one's name, address and
    volume), after what `after` names for it (its leave step)."""

    # Per member name; 0 for a machine never replaced.
    generations: Mapping[str, int] = field(default_factory=dict)
    # Per member name: what its machine's replacement waits for.
    after: Mapping[str, list[pulumi.Resource]] = field(default_factory=dict)

    def trigger(self, member: str) -> int:
        return self.generations.get(member, 0)

    def waits_for(self, member: str) -> list[pulumi.Resource] | None:
        return self.after.get(member)
