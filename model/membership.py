"""Membership of a running cluster: the members it has against the members the settings want.

Pure: no Pulumi imports. A cluster's members are decided by its member count (`etcd-1` ..
`etcd-N`); a running cluster's members are what the stack's last update recorded in its
`members` output, and the members that founded it in its `founding_members` output.

A grow is an ordinary `pulumi up` (`MembershipPlan`): every member the count adds boots with
user-data that does not start etcd, and joins the running cluster through etcd's learners,
one member at a time, lowest number first (`etcd-member-join`, run by the rollout over SSH,
components/rollout.py). So is a shrink: every member the count removes leaves the cluster
first, one at a time, highest number first (`etcd-member-leave`, run on the lowest-numbered
member that stays), and only then does Pulumi delete its machine, volume, records and
certificates (the engine deletes what the program no longer registers after everything it
registers, the leave steps included). A deleted machine that etcd still counted as a voter
would cost the cluster its fault tolerance, or its quorum.

Refused before any resource is registered, with the setting and the fix (`refusal`): a shrink
that leaves fewer than a majority of the running members (each leave needs the rest of the
cluster healthy, and a smaller remainder could no longer outvote the members it loses on the
way), a shrink of protected members (Pulumi cannot delete them), and any change without the
rollout's SSH channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model.settings.parsing import setting_name

# The stack outputs that record a cluster's members (a list of {"name": ...}) and the names of
# the members that founded it; an events cluster's carry the events prefix.
MEMBERS_OUTPUT = "members"
FOUNDERS_OUTPUT = "founding_members"
# Each member's entry in MEMBERS_OUTPUT: how many times a `pulumi up` replaced its machine (the
# machine's and its join step's replacement trigger).
GENERATION = "generation"


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


def recorded_generations(outputs: Mapping[str, Any], output_name: str) -> dict[str, int] | None:
    """Per member name its generation, as the stack output lists them; None when a member has
    none (the stack was last updated by a version of this program that did not record them)."""
    members = outputs.get(output_name)
    if not isinstance(members, list) or not members:
        return None
    found = {}
    for member in members:
        if not isinstance(member, dict):
            return None
        name, generation = member.get("name"), member.get(GENERATION)
        # JSON numbers may come back as floats.
        if not isinstance(name, str) or not isinstance(generation, int | float):
            return None
        found[name] = int(generation)
    return found


def recorded_addresses(outputs: Mapping[str, Any], output_name: str
                       ) -> dict[str, tuple[str | None, str | None]]:
    """Per member name its (private, public) IPv4 address, as the stack output lists them."""
    members = outputs.get(output_name)
    found: dict[str, tuple[str | None, str | None]] = {}
    for member in members if isinstance(members, list) else []:
        if isinstance(member, dict) and isinstance(member.get("name"), str):
            private, public = member.get("private_ipv4"), member.get("public_ipv4")
            found[member["name"]] = (private if isinstance(private, str) else None,
                                     public if isinstance(public, str) else None)
    return found


def recorded_founder_names(outputs: Mapping[str, Any], output_name: str) -> tuple[str, ...] | None:
    """The founding members' names a stack output lists (none once every founder was replaced
    or left); None when there is no such output (a new stack, or one last updated by a version
    of this program that did not record them)."""
    founders = outputs.get(output_name)
    if not isinstance(founders, list):
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
    # The running members the settings no longer want, in the order they leave (highest
    # number first): each leaves before Pulumi deletes its machine.
    leavers: tuple[str, ...] = ()
    # The member whose machine this run replaces (model/replacement.py): it leaves, its machine
    # is deleted and created again, and it joins as a new member (one of `joiners`).
    replacing: str | None = None
    # The member whose replacement leave step this run registers: the one it replaces, or the
    # one an earlier run replaced while the setting still names it (the step then stays as it
    # is, so a preview plans nothing until the setting goes).
    replaced: str | None = None
    # Per wanted member: its generation (its machine's replacement trigger), raised for the
    # member this run replaces.
    generations: Mapping[str, int] = field(default_factory=dict)
    # Per running member: its (private, public) address as the stack recorded it (the member
    # that runs a replaced member's leave is reached there: its machine stays as it is).
    addresses: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)


def membership_plan(running: Sequence[str] | None, founders: Sequence[str] | None,
                    wanted: Sequence[str], generations: Mapping[str, int] | None = None,
                    replacing: str | None = None,
                    addresses: Mapping[str, tuple[str | None, str | None]] | None = None,
                    replaced: str | None = None) -> MembershipPlan:
    """The plan for the wanted members, from the record: a new cluster is founded by all of
    them; a running one keeps its founders (the members it runs when the record has none),
    every other wanted member joins it, and every running member not wanted leaves it. The
    member `replacing` names (a running member) joins again on a new machine: it is no founder
    any more, and its generation is one more than recorded."""
    recorded = generations or {}
    generation = {name: recorded.get(name, 0) + (1 if name == replacing else 0)
                  for name in wanted}
    if not running:
        return MembershipPlan(founders=tuple(wanted), joiners=(), generations=generation)
    kept = tuple(name for name in (running if founders is None else founders)
                 if name in wanted and name != replacing)
    return MembershipPlan(founders=kept,
                          joiners=tuple(name for name in wanted if name not in kept),
                          running=tuple(running),
                          leavers=leaving_order(running, wanted),
                          replacing=replacing,
                          replaced=replacing or replaced,
                          generations=generation,
                          addresses=dict(addresses or {}))


def leaving_order(running: Sequence[str], wanted: Sequence[str]) -> tuple[str, ...]:
    """The running members not wanted, highest number first (the record lists members in
    member order): the members a shrink removes keep the lowest numbers in use."""
    return tuple(reversed([name for name in running if name not in wanted]))


def majority(count: int) -> int:
    return count // 2 + 1


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
        return leaving_order(self.running, self.wanted)

    def refusal(self, rollout_enabled: bool, protect_members: bool) -> str | None:
        """Why `pulumi up` cannot make this change, with the fix; None for a change it makes."""
        count = len(self.running)
        runs_with = (f"etcd cluster {self.cluster}, which runs with {count} "
                     f"member{'s' if count != 1 else ''} ({', '.join(self.running)})")
        setting = f"{setting_name(self.setting)} = {len(self.wanted)}"
        set_back = f"set it back: `pulumi config set {self.setting} {count}`"
        if self.leaving:
            would = f"{setting}: would remove {', then '.join(self.leaving)} from {runs_with}"
            if count - len(self.leaving) < majority(count):
                return f"{would}, {self._too_small(count)}. Or {set_back}."
            if not rollout_enabled:
                return (f"{would}, but members leave over the rollout's SSH channel and "
                        "rolloutVia is none. Set `pulumi config set rolloutVia private` (or "
                        f"public), or {set_back}.")
            if protect_members:
                return (
                    f"{would}, but protectMembers is on, so Pulumi cannot delete their machines "
                    "and volumes. Lift it for the shrink: `pulumi config set protectMembers "
                    "false` and `pulumi up` (it changes only the protection), then this "
                    f"`pulumi up`, then `pulumi config set protectMembers true` and `pulumi up`; "
                    f"or {set_back}."
                )
            return None
        if self.joining and not rollout_enabled:
            return (
                f"{setting}: would add {', then '.join(self.joining)} to {runs_with}, but new "
                "members join over the rollout's SSH channel and rolloutVia is none. Set "
                f"`pulumi config set rolloutVia private` (or public), or {set_back}."
            )
        return None

    def _too_small(self, count: int) -> str:
        """Why a shrink to fewer than a majority of `count` is refused, and what is allowed."""
        smallest = next(size for size in range(majority(count), count + 1) if size % 2 == 1)
        reason = (f"leaving {count - len(self.leaving)}, fewer than a majority ({majority(count)}) of "
                  f"its {count}: a `pulumi up` removes at most {count - majority(count)} of "
                  f"{count} members, so the members that stay always outvote those that go")
        if smallest < count:
            return (f"{reason}. Shrink in steps: `pulumi config set {self.setting} {smallest}` "
                    "and `pulumi up` first")
        return (f"{reason}, and an etcd cluster has an odd number of members, so a cluster of "
                f"{count} cannot shrink by `pulumi up`. For a smaller cluster, create a new one "
                "and restore a snapshot of this one into it (README, \"Backups and disaster "
                "recovery\")")


def membership_change(cluster: str, setting: str, running: Sequence[str] | None,
                      wanted: Sequence[str]) -> MembershipChange | None:
    """The change from the running members to the wanted ones; None when nothing runs yet (the
    wanted members found the cluster) or the members are the same."""
    if running is None or tuple(running) == tuple(wanted):
        return None
    return MembershipChange(cluster=cluster, setting=setting, running=tuple(running),
                            wanted=tuple(wanted))
