"""Replacing one member by `pulumi up` (`replaceMember`), under mocks: what the program
registers, in which order, and every refusal before any resource.

A replacement of etcd-2 in a running 3-member local cluster: etcd-2 leaves first, by a step on
etcd-1 (at the address the stack recorded for it); etcd-2's VM, whose generation is now 1 (its
`replacement_trigger`), is deleted before its replacement is created (`delete_before_replace`),
after that leave; etcd-2 boots with a joining member's user-data and joins again through etcd-1
and etcd-3, first of the rollout steps. The outputs record generation 1, etcd-2 no longer
among the founders, and the member the setting named, so the next run replaces nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from cloud_config import write_file_contents
from program import ProgramError, ProgramRun, run_program
from test_program_local import QEMU

from model import rollout

REMOTE = "command:remote:Command"
VM = "command:local:Command"
FOUNDERS = ["etcd-1", "etcd-2", "etcd-3"]
INITIAL_CLUSTER_FILE = "/etc/etcd/initial-cluster.env"


def recorded(count: int = 3, generations: bool = True, **extra: Any) -> dict[str, Any]:
    """A running local cluster's outputs, as its last update left them."""
    members = []
    for number in range(1, count + 1):
        member: dict[str, Any] = {"name": f"etcd-{number}",
                                  "private_ipv4": f"192.168.56.{10 + number}",
                                  "public_ipv4": None}
        if generations:
            member["generation"] = 0
        members.append(member)
    return {"members": members, "founding_members": FOUNDERS[:count], **extra}


@pytest.fixture(scope="module")
def replaced() -> ProgramRun:
    return run_program({**QEMU, "replaceMember": "etcd-2"}, "local", recorded_outputs=recorded())


def vms(run: ProgramRun) -> dict[str, Any]:
    return {reg.short_name.rsplit("-members-", 1)[-1]: reg for reg in run.of_type(VM)}


def test_the_replaced_member_leaves_first_from_the_lowest_numbered_member_that_stays(
        replaced: ProgramRun) -> None:
    (leave,) = [reg for reg in replaced.of_type(REMOTE) if reg.short_name.endswith("-leave")]
    assert leave.short_name == "etcd-2-replacement-leave"
    assert leave.inputs["connection"]["host"] == "192.168.56.11"
    assert leave.inputs["connection"]["user"] == rollout.ROLLOUT_USER
    assert leave.inputs["create"] == rollout.leave_step(
        "etcd-2", "https://etcd-2.local.etcd.internal:2380")
    assert "connection" in leave.secret_inputs  # the deploy key


def test_only_the_replaced_members_vm_gets_a_new_generation_and_waits_for_its_leave(
        replaced: ProgramRun) -> None:
    (leave,) = [reg for reg in replaced.of_type(REMOTE) if reg.short_name.endswith("-leave")]
    machines = vms(replaced)
    assert {name: vm.replacement_trigger for name, vm in machines.items()} == {
        "etcd-1": 0, "etcd-2": 1, "etcd-3": 0}
    assert all(vm.delete_before_replace for vm in machines.values())
    assert leave.urn in machines["etcd-2"].dependencies
    assert not [vm for name, vm in machines.items()
                if name != "etcd-2" and leave.urn in vm.all_dependencies]


def test_the_replaced_member_boots_as_a_joiner_and_joins_again_first_through_the_others(
        replaced: ProgramRun) -> None:
    user_data = {name: vm.inputs["stdin"] for name, vm in vms(replaced).items()}
    assert INITIAL_CLUSTER_FILE not in write_file_contents(user_data["etcd-2"])
    assert INITIAL_CLUSTER_FILE in write_file_contents(user_data["etcd-1"])
    steps = replaced.of_type(REMOTE)
    chain = [step for step in steps if not step.short_name.endswith("-replacement-leave")]
    join = chain[0]
    assert join.short_name == "etcd-2-join", [step.short_name for step in chain]
    assert join.replacement_trigger == 1
    assert join.inputs["connection"]["host"] == "192.168.56.12"
    endpoints = ",".join(f"https://etcd-{n}.local.etcd.internal:2379" for n in (1, 3))
    assert f"--endpoints {endpoints} " in join.inputs["create"]
    assert not [step for step in chain[1:] if step.short_name.endswith("-join")]
    assert all("--expect-members 3 " in step.inputs["create"] for step in chain[1:]
               if not step.short_name.endswith("-files"))


def test_a_replacement_is_recorded_so_the_setting_left_in_place_replaces_nothing_again(
        replaced: ProgramRun) -> None:
    members = replaced.outputs["members"].value
    assert {member["name"]: member["generation"] for member in members} == {
        "etcd-1": 0, "etcd-2": 1, "etcd-3": 0}
    assert replaced.outputs["founding_members"].value == ["etcd-1", "etcd-3"]
    assert replaced.outputs["replaced_member"].value == "etcd-2"

    after = recorded(replaced_member="etcd-2", founding_members=["etcd-1", "etcd-3"])
    after["members"][1]["generation"] = 1
    again = run_program({**QEMU, "replaceMember": "etcd-2"}, "local", recorded_outputs=after)
    # The leave step stays as it was (a preview plans nothing), the generation too.
    (leave,) = [reg for reg in again.of_type(REMOTE) if reg.short_name.endswith("-leave")]
    (first,) = [reg for reg in replaced.of_type(REMOTE) if reg.short_name.endswith("-leave")]
    assert (leave.urn, leave.inputs["create"], leave.inputs["connection"]["host"]) == (
        first.urn, first.inputs["create"], first.inputs["connection"]["host"])
    assert vms(again)["etcd-2"].replacement_trigger == 1
    (join,) = [reg for reg in again.of_type(REMOTE) if reg.short_name.endswith("-join")]
    assert join.replacement_trigger == 1

    # Without the setting the generation stays, and the next replacement of etcd-2 raises it.
    cleared = run_program(QEMU, "local", recorded_outputs=after)
    assert not [reg for reg in cleared.of_type(REMOTE) if reg.short_name.endswith("-leave")]
    assert cleared.outputs["replaced_member"].value is None
    assert vms(cleared)["etcd-2"].replacement_trigger == 1
    again_later = run_program({**QEMU, "replaceMember": "etcd-2"}, "local",
                              recorded_outputs={**after, "replaced_member": None})
    assert vms(again_later)["etcd-2"].replacement_trigger == 2


def test_a_new_stack_gives_every_machine_generation_0_and_records_it() -> None:
    run = run_program(QEMU, "local", recorded_outputs={})
    assert {vm.replacement_trigger for vm in vms(run).values()} == {0}
    assert {member["generation"] for member in run.outputs["members"].value} == {0}
    assert run.outputs["replaced_member"].value is None


@pytest.mark.parametrize(("config", "outputs", "expected"), [
    pytest.param({"replaceMember": "etcd-9"}, recorded(),
                 "etcd-cluster:replaceMember = etcd-9: no member of this stack is named so "
                 "(etcd cluster local: etcd-1, etcd-2, etcd-3)", id="no-such-member"),
    pytest.param({"replaceMember": "etcd-2"}, {},
                 "etcd-cluster:replaceMember = etcd-2: etcd cluster local does not run yet",
                 id="new-stack"),
    pytest.param({"replaceMember": "etcd-2", "memberCount": 5}, recorded(),
                 "etcd-cluster:memberCount = 5 changes its members in the same update",
                 id="count-changes"),
    pytest.param({"replaceMember": "etcd-1", "memberCount": 1}, recorded(count=1),
                 "the member leaves before its new machine joins, and a cluster of 1 would be "
                 "gone with it", id="one-member"),
    pytest.param({"replaceMember": "etcd-2"}, recorded(generations=False),
                 "did not record the members' generations", id="no-generations"),
    pytest.param({"replaceMember": "etcd-2", "protectMembers": True}, recorded(),
                 "protectMembers is on, so Pulumi cannot replace its machine", id="protected"),
])
def test_a_replacement_pulumi_up_cannot_make_safe_is_refused_before_any_resource(
        config: dict[str, Any], outputs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ProgramError) as failure:
        run_program({**QEMU, **config}, "local", recorded_outputs=outputs)
    assert expected in str(failure.value)
    assert "`pulumi config rm replaceMember`" in str(failure.value)
    assert [reg.type for reg in failure.value.registrations] == ["pulumi:pulumi:Stack"]


def test_a_replace_member_setting_that_is_no_member_name_or_without_the_rollout_is_refused(
        ) -> None:
    for config, expected in (
            ({"replaceMember": "Etcd 2"}, "must be a member's name"),
            ({"replaceMember": "etcd-2", "rolloutVia": "none"},
             "is set but rolloutVia is none")):
        with pytest.raises(ProgramError) as failure:
            run_program({**QEMU, **config}, "local", recorded_outputs=recorded())
        assert "etcd-cluster:replaceMember = " in str(failure.value)
        assert expected in str(failure.value)


def test_a_member_of_the_events_cluster_is_replaced_in_the_events_cluster_only() -> None:
    events = [{"name": f"etcd-events-{n}", "private_ipv4": f"192.168.56.{20 + n}",
               "public_ipv4": None, "generation": 0} for n in (1, 2, 3)]
    outputs = {**recorded(), "events_members": events,
               "events_founding_members": [member["name"] for member in events]}
    run = run_program({**QEMU, "eventsCluster": True, "eventsMemberCount": 3,
                       "replaceMember": "etcd-events-3"}, "local", recorded_outputs=outputs)
    (leave,) = [reg for reg in run.of_type(REMOTE) if reg.short_name.endswith("-leave")]
    assert leave.short_name == "etcd-events-3-replacement-leave"
    assert leave.inputs["connection"]["host"] == "192.168.56.21"
    triggers = {reg.short_name.rsplit("-members-", 1)[-1]: reg.replacement_trigger
                for reg in run.of_type(VM)}
    assert triggers["etcd-events-3"] == 1
    assert {name: trigger for name, trigger in triggers.items() if name != "etcd-events-3"} == {
        "etcd-1": 0, "etcd-2": 0, "etcd-3": 0, "etcd-events-1": 0, "etcd-events-2": 0}
    assert run.outputs["events_replaced_member"].value == "etcd-events-3"
    assert run.outputs["replaced_member"].value is None


def test_on_digitalocean_the_droplet_is_replaced_and_the_volume_kept_for_the_new_one() -> None:
    outputs = recorded()
    for number, member in enumerate(outputs["members"], start=1):
        member["private_ipv4"] = f"10.10.0.{number + 1}"
    run = run_program({"rolloutVia": "private", "protectMembers": False,
                       "replaceMember": "etcd-2"}, recorded_outputs=outputs)
    (leave,) = [reg for reg in run.of_type(REMOTE) if reg.short_name.endswith("-leave")]
    assert leave.inputs["connection"]["host"] == "10.10.0.2"
    droplets = {reg.short_name.rsplit("-", 1)[-1]: reg
                for reg in run.of_type("digitalocean:index/droplet:Droplet")}
    assert {number: droplet.replacement_trigger for number, droplet in droplets.items()} == {
        "1": 0, "2": 1, "3": 0}
    assert droplets["2"].delete_before_replace
    assert leave.urn in droplets["2"].dependencies
    volumes = run.of_type("digitalocean:index/volume:Volume")
    assert len(volumes) == 3
    assert all(volume.replacement_trigger is None for volume in volumes)
    attachments = run.of_type("digitalocean:index/volumeAttachment:VolumeAttachment")
    assert all(attachment.delete_before_replace for attachment in attachments)
