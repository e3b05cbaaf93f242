"""Validation of the day-2 rollout settings: how `pulumi up` reaches running members."""

from __future__ import annotations

import re

from model.rollout import ROLLOUT_VIAS, Bastion, RolloutSpec, RolloutVia
from model.settings.parsing import Reader, check_range
from model.settings.types import LOCAL_BACKENDS


def check_rollout(c: Reader, backend: str) -> RolloutSpec:
    via = c.value("rolloutVia")
    if not via:
        # Local members sit on this machine's bridge; a cloud runner's path is the user's to say.
        via = "private" if backend in LOCAL_BACKENDS else "none"
    if via not in ROLLOUT_VIAS:
        c.problem("rolloutVia", via, "must be private (the members' private addresses), public "
                  "(their public addresses; adminCidrs must admit the runner) or none.")
        via = "none"
    if via == "public" and backend in LOCAL_BACKENDS:
        c.problem("rolloutVia", via, f"{backend} members have no public address; use private.")
    host = c.value("rolloutBastionHost")
    user = c.value("rolloutBastionUser")
    port = c.value("rolloutBastionPort")
    check_range(c, "rolloutBastionPort", port, 1, 65535, "an SSH port.")
    bastion = None
    if host:
        if via == "none":
            c.problem("rolloutBastionHost", host, "is set but rolloutVia is none: set rolloutVia "
                      "private (members' addresses as the bastion sees them) or remove it.")
        if not user:
            c.problem("rolloutBastionUser", user, "must name the bastion's SSH user.")
        bastion = Bastion(host=host, user=user, port=port)
    replace_member = c.value("replaceMember") or None
    if replace_member is not None:
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", replace_member):
            c.problem("replaceMember", replace_member, "must be a member's name, e.g. etcd-2 "
                      "or etcd-events-2 (the stack's `members` output lists them).")
        elif via == "none":
            c.problem("replaceMember", replace_member, "is set but rolloutVia is none: the "
                      "member leaves and joins over the rollout's SSH channel; set rolloutVia "
                      "private (or public), or remove it.")
    via_value: RolloutVia = via
    return RolloutSpec(via=via_value, bastion=bastion, replace_member=replace_member)
