"""Names of the resources inside a component, and the aliases that keep older stacks' URNs.

Every resource is named after the component that creates it (`f"{component}-{what}"`), so two
clusters in one program never collide. Stacks created before that carry the bare names
(`etcd-1`, `client-ca-cert`, ...): for their main cluster each resource also answers to its old
name (an alias), so `pulumi up` after an upgrade of this program renames resources in the state
instead of replacing members.
"""

from __future__ import annotations

import pulumi


class ChildNames:
    """Names and options of one component's children."""

    def __init__(self, parent: pulumi.Resource, prefix: str, keep_unprefixed: bool) -> None:
        self._parent = parent
        self._prefix = prefix
        self._keep_unprefixed = keep_unprefixed

    def name(self, what: str) -> str:
        return f"{self._prefix}-{what}"

    def opts(self, what: str, *, protect: bool | None = None,
             ignore_changes: list[str] | None = None,
             depends_on: list[pulumi.Resource] | None = None,
             replacement_trigger: int | None = None,
             delete_before_replace: bool | None = None) -> pulumi.ResourceOptions:
        """Options of the child `what`: this component as parent, and its old name as alias."""
        aliases: list[pulumi.Input[str] | pulumi.Alias] | None = (
            [pulumi.Alias(name=what)] if self._keep_unprefixed else None)
        return pulumi.ResourceOptions(parent=self._parent, aliases=aliases, protect=protect,
                                      ignore_changes=ignore_changes, depends_on=depends_on,
                                      replacement_trigger=replacement_trigger,
                                      delete_before_replace=delete_before_replace)
