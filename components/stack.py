"""The stack: its settings mapped to clusters, and what it exports.

The only place that turns `Settings` into component args (through `model.cluster_spec`): the
main cluster always, the events cluster beside it with `eventsCluster`. Export names of the
main cluster are what they always were; the events cluster's carry an `events_` prefix, and
the client files (CA, kube-apiserver's client certificate) are the main cluster's for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components.cluster import EtcdCluster, EtcdClusterArgs
from components.config import StackSettingsError
from components.recorded import recorded_outputs
from model import backup, consumers, membership, replacement
from model.cluster_spec import ClusterSpec, events_cluster, main_cluster
from model.settings import Settings
from model.topology import build_topology

# Outputs the events cluster shares with the main one, and the backups' (an events cluster
# has none): exported once, by the main cluster.
SHARED_OUTPUTS = frozenset({
    "ca_pem", "apiserver_client_cert_pem", "apiserver_client_key_pem", "backend",
    "kubeadm_external_etcd", "vpc_id", "client_source_tags",
    "backup_location", "backup_schedule", backup.RESTORED_OUTPUT,
})
EVENTS_PREFIX = "events_"


def build_clusters(settings: Settings) -> tuple[EtcdCluster, EtcdCluster | None]:
    main_spec = main_cluster(settings)
    events_spec = events_cluster(settings)
    recorded = recorded_outputs()
    main_plan, events_plan = membership_plans(main_spec, events_spec, recorded)
    restored_from = recorded.get(backup.RESTORED_OUTPUT)
    main = EtcdCluster(main_spec.name, EtcdClusterArgs(
        spec=main_spec, membership=main_plan, keep_unprefixed_names=True,
        restored_from=restored_from if isinstance(restored_from, str) else None))
    if events_spec is None:
        return main, None
    events = EtcdCluster(events_spec.name, EtcdClusterArgs(
        spec=events_spec,
        membership=events_plan,
        shared_clients=main.pki.client_pki,
        vpc_id=main.vpc_id,
    ))
    return main, events


def membership_plans(main: ClusterSpec, events: ClusterSpec | None,
                     recorded: Mapping[str, Any]
                     ) -> tuple[membership.MembershipPlan, membership.MembershipPlan | None]:
    """Each cluster's founders, joiners, leavers and replaced member, from the members the
    stack's last update recorded (`recorded`: its outputs); stops before any resource is
    registered when a running cluster would change its members in a way `pulumi up` cannot make
    safe (model/membership.py and model/replacement.py say why)."""
    problems = []
    plans: list[membership.MembershipPlan | None] = []
    requested = main.rollout.replace_member
    names: dict[str, list[str]] = {}
    for spec, setting, prefix in ((main, "memberCount", ""),
                                  (events, "eventsMemberCount", EVENTS_PREFIX)):
        if spec is None:
            plans.append(None)
            continue
        wanted = [member.name for member in build_topology(spec).members]
        names[spec.name] = wanted
        members_output = prefix + membership.MEMBERS_OUTPUT
        running = membership.recorded_member_names(recorded, members_output)
        founders = membership.recorded_founder_names(recorded,
                                                     prefix + membership.FOUNDERS_OUTPUT)
        generations = membership.recorded_generations(recorded, members_output)
        change = membership.membership_change(spec.name, setting, running, wanted)
        refusal = (change.refusal(spec.rollout.enabled, spec.protect_members)
                   if change is not None else None)
        if refusal is not None:
            problems.append(refusal)
        replacing = replaced = None
        if requested is not None and requested in wanted:
            replaced_before = recorded.get(prefix + replacement.REPLACED_OUTPUT)
            replacing = replacement.replacing_now(requested, replaced_before, running)
            if running is None or requested not in running:
                problems.append(replacement.not_running_refusal(requested, spec.name,
                                                                running or ()))
            elif requested == replaced_before:
                replaced = requested
                pulumi.log.warn(replacement.already_replaced_warning(requested, spec.name))
            else:
                request = replacement.ReplacementRequest(
                    cluster=spec.name, count_setting=setting, member=requested,
                    running=tuple(running), wanted=tuple(wanted),
                    generations_recorded=generations is not None)
                refused = request.refusal(spec.rollout.enabled, spec.protect_members)
                if refused is not None:
                    problems.append(refused)
        plans.append(membership.membership_plan(
            running, founders, wanted, generations, replacing,
            membership.recorded_addresses(recorded, members_output), replaced))
    if requested is not None and not any(requested in wanted for wanted in names.values()):
        problems.append(replacement.unknown_member_refusal(requested, names))
    if problems:
        raise StackSettingsError(problems)
    main_plan, events_plan = plans
    assert main_plan is not None
    return main_plan, events_plan


def stack_outputs(main: EtcdCluster, events: EtcdCluster | None) -> dict[str, Any]:
    """Every stack output, by name."""
    outputs = dict(main.outputs)
    if events is None:
        return outputs
    overrides = consumers.etcd_servers_overrides(events.topology.client_urls)
    outputs["etcd_servers_overrides"] = overrides
    outputs["kubeadm_external_etcd"] = consumers.kubeadm_external_etcd(
        main.topology.client_urls, overrides)
    outputs.update({f"{EVENTS_PREFIX}{name}": value for name, value in events.outputs.items()
                    if name not in SHARED_OUTPUTS})
    return outputs
