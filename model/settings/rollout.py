"""Validation of the day-2 rollout settings: how `pulumi up` reaches running members."""

from __future__ import annotations

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
    via_value: RolloutVia = via
    return RolloutSpec(via=via_value, bastion=bastion)
