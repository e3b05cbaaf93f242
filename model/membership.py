"""Membership of a running cluster: the members it has against the members the settings want.

Pure: no Pulumi imports. A cluster's members are decided by its member count (`etcd-1` ..
`etcd-N`), and a running cluster's members are what the stack's last update recorded in its
`members` output. Until `pulumi up` changes a running cluster's membership through etcd's
learners (member add/promote, member remove, one member at a time), a different count is
refused before any resource is registered: a new machine would boot as a founder of a second
cluster that never forms, and a machine deleted while etcd still counts it costs the cluster
its fault tolerance, or its quorum (3 -> 1 deletes two of three voters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model.settings.parsing import setting_name

# The stack output that records a cluster's members (a list of {"name": ...}); an events
# cluster's carries the events prefix.
MEMBERS_OUTPUT = "members"


def recorded_member_names(outputs: Mapping[str, Any], output_name: str) -> tuple[str, ...] | None:
    """The member names a stack output lists; None when the stack has not recorded the cluster
    (a new stack, one that was destroyed, or one whose cluster was never up)."""
    members = outputs.get(output_name)
    if not isinstance(members, list) or not members:
        return None
    names = [member.get("name") for member in members if isinstance(member, dict)]
    if not names or not all(isinstance(name, str) and name for name in names):
        return None
    return tuple(str(name) for name in names)


@dataclass(frozen=True)
class MembershipChange:
    cluster: str
    # The setting that sizes this cluster (memberCount, eventsMemberCount).
    setting: str
    running: tuple[str, ...]
    wanted: tuple[str, ...]

    @property
    def joining(self) -> tuple[str, ...]:
        """The members to add, in the order they would join (lowest number first)."""
        return tuple(name for name in self.wanted if name not in self.running)

    @property
    def leaving(self) -> tuple[str, ...]:
        """The members to remove, in the order they would leave (highest number first)."""
        return tuple(reversed([name for name in self.running if name not in self.wanted]))

    def refusal(self) -> str:
        count = len(self.running)
        plan = []
        if self.joining:
            plan.append("add " + ", then ".join(self.joining))
        if self.leaving:
            plan.append("remove " + ", then ".join(self.leaving))
        return (
            f"{setting_name(self.setting)} = {len(self.wanted)}: would {' and '.join(plan)} in "
            f"etcd cluster {self.cluster}, which runs with {count} "
            f"member{'s' if count != 1 else ''} "
            f"({', '.join(self.running)}): `pulumi up` does not change the membership of a "
            "running cluster yet (a new machine would boot as a founder of a second cluster "
            "that never forms; a deleted machine would still count towards quorum). Set it "
            f"back: `pulumi config set {self.setting} {count}`. To replace one failed member, "
            "follow the README's \"Replacing one member\"."
        )


def membership_change(cluster: str, setting: str, running: Sequence[str] | None,
                      wanted: Sequence[str]) -> MembershipChange | None:
    """The change from the running members to the wanted ones; None when nothing runs yet (the
    wanted members found the cluster) or the members are the same."""
    if running is None or tuple(running) == tuple(wanted):
        return None
    return MembershipChange(cluster=cluster, setting=setting, running=tuple(running),
                            wanted=tuple(wanted))
