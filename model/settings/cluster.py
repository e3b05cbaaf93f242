"""Validation of the cluster settings: the backend, the cluster name and the member count."""

from __future__ import annotations

from typing import Any

from model.settings.parsing import DNS_LABEL, Reader, check_dns_label
from model.settings.types import BACKENDS


def check_cluster(c: Reader, stack: str) -> dict[str, Any]:
    backend = c.value("backend")
    if backend not in BACKENDS:
        c.problem("backend", backend, f"must be one of {', '.join(BACKENDS)}: digitalocean for "
                  "droplets, qemu or virtualbox for VMs on this machine.")
    cluster_name = c.value("clusterName") or stack
    check_dns_label(c, "clusterName", cluster_name, "the cluster name")
    if not DNS_LABEL.match(stack):
        c.problems.append(f"stack name {stack!r}: the stack name is part of DNS names and tags and "
                          "must be a DNS label (lowercase letters, digits, hyphens); "
                          "rename it with `pulumi stack rename`.")

    member_count = c.value("memberCount")
    check_member_count(c, "memberCount", member_count)
    return {"backend": backend, "cluster_name": cluster_name, "stack": stack,
            "member_count": member_count}


def check_member_count(c: Reader, key: str, member_count: int) -> None:
    if member_count not in (1, 3, 5, 7):
        c.problem(key, member_count,
                  "etcd needs a majority (quorum) of members to accept writes; an even count "
                  "adds no fault tolerance over the odd count below it (4 members, like 3, "
                  "survive only 1 failure) and more than 7 slows every write. Use 3 (tolerates 1 "
                  "failure), 5 (tolerates 2) or 7 (tolerates 3); 1 only for throwaway tests.")
