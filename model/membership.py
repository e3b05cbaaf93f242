"""Membership of a running cluster: the members it has against the members the settings want.

Pure: no Pulumi imports. A cluster's members are decided by its member count (`etcd-1` ..
`etcd-N`); a running cluster's members are what the stack's last update recorded in its
`members` output, and the members that founded it in its `founding_members` output.

A grow is an ordinary `pulumi up` (`MembershipPlan`): every member the count adds boots with
user-data that does not start etcd, and joins the running cluster through etcd's learners,
one member at a time, lowest number first (`etcd-member-join`, run by the rollout over SSH,
components/rollout.py). A shrink is refused before any resource is registered: a deleted
machine that etcd still counts as a voter costs the cluster its fault tolerance, or its quorum
(3 -> 1 deletes two of three voters), and `pulumi up` does not remove members yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model.settings.parsing import setting_name

# The stack outputs that record a cluster's members (a list of {"name": ...}) and the names of
# the members that founded it; an events cluster's carry the events prefix.
MEMBERS_OUTPUT = "members"
FOUNDERS_OUTPUT = "founding_members"


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


def recorded_founder_names(outputs: Mapping[str, Any], output_name: str) -> tuple[str, ...] | None:
    """The founding members' names a stack output lists; None when it lists none (a new stack,
    or one last updated by a version of this program that did not record them)."""
    founders = outputs.get(output_name)
    if not isinstance(founders, list) or not founders:
        return None
    if not all(isinstance(name, str) and name for name in founders):
        return None
    return tuple(founders)


@dataclass(frozen=True)
class MembershipPlan:
    """Who founds the cluster and who joins it, in this run."""

    # Their user-data founds the cluster (its initial-cluster file lists them).
    founders: tuple[str, ...]
    # The wanted members that are not founders, in member order: each joins the running
    # cluster (a member that joined in an earlier run keeps its join, which does not run again).
    joiners: tuple[str, ...]
    # The members the stack's record says run; empty for a new cluster.
    running: tuple[str, ...] = ()


def membership_plan(running: Sequence[str] | None, founders: Sequence[str] | None,
                    wanted: Sequence[str]) -> MembershipPlan:
    """The plan for the wanted members, from the record: a new cluster is founded by all of
    them; a running one keeps its founders (the members it runs when the record has none) and
    every other wanted member joins it."""
    if not running:
        return MembershipPlan(founders=tuple(wanted), joiners=())
    kept = tuple(name for name in (founders or running) if name in wanted)
    return MembershipPlan(founders=kept,
                          joiners=tuple(name for name in wanted if name not in kept),
                          running=tuple(running))


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

    def refusal(self, rollout_enabled: bool) -> str | None:
        """Why `pulumi up` cannot make this change, with the fix; None for a grow it makes."""
        count = len(self.running)
        runs_with = (f"etcd cluster {self.cluster}, which runs with {count} "
                     f"member{'s' if count != 1 else ''} ({', '.join(self.running)})")
        set_back = f"Set it back: `pulumi config set {self.setting} {count}`."
        if self.leaving:
            return (
                f"{setting_name(self.setting)} = {len(self.wanted)}: would remove "
                f"{', then '.join(self.leaving)} from {runs_with}: `pulumi up` does not remove "
                "members of a running cluster yet (a deleted machine would still count towards "
                f"quorum). {set_back} To remove a member by hand, follow the README's "
                "\"Replacing one member\" (etcd-member-leave first)."
            )
        if self.joining and not rollout_enabled:
            return (
                f"{setting_name(self.setting)} = {len(self.wanted)}: would add "
                f"{', then '.join(self.joining)} to {runs_with}, but new members join over the "
                "rollout's SSH channel and rolloutVia is none. Set `pulumi config set rolloutVia "
                f"private` (or public), or set it back: `pulumi config set {self.setting} "
                f"{count}`."
            )
        return None


def membership_change(cluster: str, setting: str, running: Sequence[str] | None,
                      wanted: Sequence[str]) -> MembershipChange | None:
    """The change from the running members to the wanted ones; None when nothing runs yet (the
    wanted members found the cluster) or the members are the same."""
    if running is None or tuple(running) == tuple(wanted):
        return None
    return MembershipChange(cluster=cluster, setting=setting, running=tuple(running),
                            wanted=tuple(wanted))
