"""Replacing one member of a running cluster (its machine died, or its disk): `replaceMember`.

Pure: no Pulumi imports. One `pulumi up` with `replaceMember` set to a member's name:
1. the member leaves the cluster (`etcd-member-leave`, run on the lowest-numbered other member:
   the member's own machine may be dead), refused while the rest of the cluster is unhealthy;
2. its machine is deleted and created again, with the same name, address, certificates and
   the user-data of a joining member (the engine replaces it because its generation, the
   machine's `replacement_trigger`, is one more than the stack recorded; `delete_before_replace`:
   the new machine takes the old one's name, address and, on DigitalOcean, its volume);
3. it joins as a new member through etcd's learners (`etcd-member-join`): it starts empty and
   syncs from the cluster. Data on a surviving volume is a removed member's, which etcd cannot
   take back: the join moves it aside (never deletes it).

The setting stays done: the stack records the member it replaced (`replaced_member`), so later
updates with the setting still in place replace nothing (they warn, and keep the leave step as
it is, so a preview plans nothing; removing the setting deletes the step, which does nothing).
To replace the same member again, remove the setting in an update first.

Refused before any resource, naming the fix: a name that is no member, a cluster that does not
run yet or has fewer than 3 members (the member's leave would be the cluster's end), a change
of the member count in the same update, no rollout SSH channel, protected members, and a stack
whose last update recorded no generations (a machine that never had a trigger is not replaced
by its first one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from model.settings.parsing import setting_name

SETTING = "replaceMember"
# The stack output that records the member the setting named when the update ran (None when
# it named none of the cluster's); an events cluster's carries the events prefix.
REPLACED_OUTPUT = "replaced_member"
# Members a cluster needs for one of them to leave and join again without losing quorum.
MINIMUM_MEMBERS = 3


def replacing_now(requested: str | None, replaced_before: str | None,
                  running: Sequence[str] | None) -> str | None:
    """The member this run replaces: the one the setting names, if it runs and the stack did
    not record it as replaced by an earlier update (with the setting left in place)."""
    if not requested or running is None or requested not in running:
        return None
    return None if requested == replaced_before else requested


def stays_to_run_the_leave(member: str, wanted: Sequence[str]) -> str:
    """The member that runs the replaced member's leave: the lowest-numbered other one."""
    return next(name for name in wanted if name != member)


@dataclass(frozen=True)
class ReplacementRequest:
    cluster: str
    # The setting that sizes this cluster (memberCount, eventsMemberCount).
    count_setting: str
    member: str
    running: tuple[str, ...]
    wanted: tuple[str, ...]
    # Whether the stack's record gives every member a generation.
    generations_recorded: bool

    def refusal(self, rollout_enabled: bool, protect_members: bool) -> str | None:
        """Why `pulumi up` cannot replace the member now, with the fix; None when it can."""
        count = len(self.running)
        would = (f"{setting_name(SETTING)} = {self.member}: would replace {self.member} of etcd "
                 f"cluster {self.cluster}, which runs with {count} "
                 f"member{'s' if count != 1 else ''} ({', '.join(self.running)})")
        remove = f"`pulumi config rm {SETTING}`"
        if set(self.running) != set(self.wanted):
            return (f"{would}, but {setting_name(self.count_setting)} = {len(self.wanted)} "
                    "changes its members in the same update: `pulumi up` makes one membership "
                    f"change at a time. Set `pulumi config set {self.count_setting} {count}` for "
                    f"the replacement and change the count after it, or {remove}.")
        if count < MINIMUM_MEMBERS:
            return (f"{would}: the member leaves before its new machine joins, and a cluster of "
                    f"{count} would be gone with it. Grow it to {MINIMUM_MEMBERS} members first "
                    f"(`pulumi config set {self.count_setting} {MINIMUM_MEMBERS}`), or restore a "
                    "snapshot into a new cluster (README, \"Backups and disaster recovery\"); "
                    f"or {remove}.")
        if not self.generations_recorded:
            return (f"{would}, but the stack's last update was made by a version of this "
                    "program that did not record the members' generations, which a replacement "
                    f"needs. {remove}, run `pulumi up` once (it changes no member), then set it "
                    "again.")
        if not rollout_enabled:
            return (f"{would}, but the member leaves and joins over the rollout's SSH channel "
                    "and rolloutVia is none. Set `pulumi config set rolloutVia private` (or "
                    f"public), or {remove}.")
        if protect_members:
            return (f"{would}, but protectMembers is on, so Pulumi cannot replace its machine. "
                    "Lift it for the replacement: `pulumi config set protectMembers false` and "
                    "`pulumi up` (it changes only the protection), then this `pulumi up`, then "
                    f"`pulumi config set protectMembers true` and `pulumi up`; or {remove}.")
        return None


def unknown_member_refusal(requested: str, members: Mapping[str, Sequence[str]]) -> str:
    """The setting names no member of any cluster of the stack (`members`: per cluster name)."""
    listed = "; ".join(f"etcd cluster {cluster}: {', '.join(names)}"
                       for cluster, names in members.items())
    return (f"{setting_name(SETTING)} = {requested}: no member of this stack is named so "
            f"({listed}). Set it to one of them, or `pulumi config rm {SETTING}`.")


def not_running_refusal(requested: str, cluster: str, running: Sequence[str]) -> str:
    """The setting names a member that does not run yet (a new cluster, or a member the
    member count adds in this update)."""
    if not running:
        runs = "does not run yet (the stack records no members of it)"
    else:
        runs = f"runs with {', '.join(running)} only"
    return (f"{setting_name(SETTING)} = {requested}: etcd cluster {cluster} {runs}, so there is "
            f"no {requested} to replace: `pulumi config rm {SETTING}`.")


def already_replaced_warning(member: str, cluster: str) -> str:
    return (f"{setting_name(SETTING)} = {member}: an earlier `pulumi up` replaced {member} of "
            f"etcd cluster {cluster}; this one replaces nothing. Remove the setting (`pulumi "
            f"config rm {SETTING}`); to replace {member} again, run `pulumi up` without it "
            "first.")
