"""A running cluster's membership under mocks: the program reads the members (and founders) its
stack's last update recorded; a grow becomes join steps, a shrink leave steps, and what
`pulumi up` cannot make safe is refused before any resource.

A grow 3 -> 5 of a running cluster: the founders' user-data is as before (it lists the 3
founders; running machines ignore user-data changes anyway), the new members' user-data writes
no initial-cluster file (their etcd stays down until they join), and each new member gets a join
step on its own machine, lowest number first, before every other rollout step (whose gates
expect 5), each step waiting for the one before. The outputs list 5 members and the 3 founders.

A shrink 5 -> 3: the program no longer registers etcd-4's and etcd-5's machines, certificates
and records (the engine deletes them after every step it runs), and etcd-5, then etcd-4 leave
first, by steps run on etcd-1, before every other step (whose gates expect 3).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from cloud_config import write_file_contents
from program import ProgramError, ProgramRun, run_program
from test_program_local import QEMU

from model import rollout

REMOTE = "command:remote:Command"
FOUNDERS = ["etcd-1", "etcd-2", "etcd-3"]
RUNNING = {"members": [{"name": name} for name in FOUNDERS]}
INITIAL_CLUSTER_FILE = "/etc/etcd/initial-cluster.env"


def machine_user_data(run: ProgramRun) -> dict[str, str]:
    """Per member name (the VM's short name ends with it): its user-data."""
    return {name.rsplit("-members-", 1)[-1]: text for name, text in run.user_data.items()}


def test_a_running_cluster_with_its_own_count_is_built_as_before() -> None:
    run = run_program(QEMU, "local", recorded_outputs=RUNNING)
    assert [member["name"] for member in run.outputs["members"].value] == FOUNDERS
    assert run.outputs["founding_members"].value == FOUNDERS
    assert not [step for step in run.of_type(REMOTE) if step.short_name.endswith("-join")]


def test_a_new_stack_founds_its_cluster_with_any_valid_count() -> None:
    run = run_program({**QEMU, "memberCount": 5}, "local", recorded_outputs={})
    assert len(run.outputs["members"].value) == 5
    assert run.outputs["founding_members"].value == [f"etcd-{n}" for n in range(1, 6)]
    for text in machine_user_data(run).values():
        files = write_file_contents(text)
        assert files[INITIAL_CLUSTER_FILE].count("=https://") == 5


@pytest.fixture(scope="module")
def grown() -> ProgramRun:
    return run_program({**QEMU, "memberCount": 5}, "local", recorded_outputs=RUNNING)


def test_a_grow_keeps_the_founders_user_data_and_new_members_write_no_initial_cluster_file(
        grown: ProgramRun) -> None:
    user_data = machine_user_data(grown)
    assert sorted(user_data) == [f"etcd-{n}" for n in range(1, 6)]
    for name in FOUNDERS:
        listed = write_file_contents(user_data[name])[INITIAL_CLUSTER_FILE]
        assert "ETCD_INITIAL_CLUSTER=etcd-1=https://etcd-1.local.etcd.internal:2380,etcd-2=" in listed
        assert "etcd-4" not in listed and "ETCD_INITIAL_CLUSTER_STATE=new" in listed
    for name in ("etcd-4", "etcd-5"):
        assert INITIAL_CLUSTER_FILE not in write_file_contents(user_data[name])


def test_each_new_member_joins_on_its_own_machine_lowest_first_before_any_other_step(
        grown: ProgramRun) -> None:
    steps = grown.of_type(REMOTE)
    assert [step.short_name.rsplit("-rollout-", 1)[-1] for step in steps[:2]] == [
        "etcd-4-join", "etcd-5-join"]
    assert not [step for step in steps[2:] if step.short_name.endswith("-join")]
    endpoints = ",".join(f"https://etcd-{n}.local.etcd.internal:2379" for n in (1, 2, 3))
    for step, name in zip(steps[:2], ("etcd-4", "etcd-5"), strict=True):
        index = int(name.split("-")[1])
        assert step.inputs["connection"]["host"] == f"192.168.56.{10 + index}"
        assert step.inputs["create"] == (
            "[ -e /var/lib/cloud/instance/boot-finished ] || cloud-init status --wait "
            ">/dev/null 2>&1 || :; sudo -n "
            f"/usr/local/sbin/etcd-member-join --name {name} --peer-url "
            f"https://{name}.local.etcd.internal:2380 --endpoints {endpoints} --timeout "
            f"{rollout.JOIN_TIMEOUT_SECONDS}")
        # A join runs once per member: later runs list other running members.
        assert step.ignore_changes == ("create",)
    step_urns = {step.urn for step in steps}
    for previous, step in itertools.pairwise(steps):
        assert step.all_dependencies & step_urns == {previous.urn}, step.short_name
    # The steps after the joins that touch etcd gate on the grown cluster.
    assert all("--expect-members 5 " in step.inputs["create"] for step in steps[2:]
               if not step.short_name.endswith("-files"))


def test_a_grown_cluster_records_every_member_and_its_founders(grown: ProgramRun) -> None:
    assert [member["name"] for member in grown.outputs["members"].value] == [
        f"etcd-{n}" for n in range(1, 6)]
    assert grown.outputs["founding_members"].value == FOUNDERS


def test_members_that_joined_keep_their_join_and_their_user_data_in_the_next_run() -> None:
    recorded = {"members": [{"name": f"etcd-{n}"} for n in range(1, 6)],
                "founding_members": FOUNDERS}
    run = run_program({**QEMU, "memberCount": 5}, "local", recorded_outputs=recorded)
    joins = [step.short_name.rsplit("-rollout-", 1)[-1] for step in run.of_type(REMOTE)
             if step.short_name.endswith("-join")]
    assert joins == ["etcd-4-join", "etcd-5-join"]
    assert INITIAL_CLUSTER_FILE not in write_file_contents(machine_user_data(run)["etcd-5"])
    assert run.outputs["founding_members"].value == FOUNDERS


FIVE = {"members": [{"name": f"etcd-{n}"} for n in range(1, 6)],
        "founding_members": FOUNDERS}


@pytest.fixture(scope="module")
def shrunk() -> ProgramRun:
    return run_program({**QEMU, "memberCount": 3}, "local", recorded_outputs=FIVE)


def test_a_shrink_registers_no_machine_certificate_or_step_of_the_leaving_members(
        shrunk: ProgramRun) -> None:
    assert sorted(machine_user_data(shrunk)) == FOUNDERS
    for registration in shrunk.registrations:
        if registration.short_name.endswith("-leave"):
            continue
        assert not any(name in registration.short_name for name in ("etcd-4", "etcd-5")), (
            registration.short_name)
    assert [member["name"] for member in shrunk.outputs["members"].value] == FOUNDERS
    assert shrunk.outputs["founding_members"].value == FOUNDERS


def test_the_leaving_members_leave_highest_first_from_a_member_that_stays_before_any_other_step(
        shrunk: ProgramRun) -> None:
    steps = shrunk.of_type(REMOTE)
    assert [step.short_name.rsplit("-rollout-", 1)[-1] for step in steps[:2]] == [
        "etcd-5-leave", "etcd-4-leave"]
    assert not [step for step in steps[2:] if step.short_name.endswith(("-leave", "-join"))]
    for step, name in zip(steps[:2], ("etcd-5", "etcd-4"), strict=True):
        # etcd-1 runs the leave: the leaving machine may be down.
        assert step.inputs["connection"]["host"] == "192.168.56.11"
        assert step.inputs["create"] == (
            f"sudo -n /usr/local/sbin/etcd-member-leave --name {name} --peer-url "
            f"https://{name}.local.etcd.internal:2380 --timeout {rollout.LEAVE_TIMEOUT_SECONDS}")
    step_urns = {step.urn for step in steps}
    for previous, step in itertools.pairwise(steps):
        assert step.all_dependencies & step_urns == {previous.urn}, step.short_name
    assert all("--expect-members 3 " in step.inputs["create"] for step in steps[2:]
               if not step.short_name.endswith("-files"))


def test_the_run_after_a_shrink_has_no_leave_step() -> None:
    run = run_program({**QEMU, "memberCount": 3}, "local", recorded_outputs={
        "members": RUNNING["members"], "founding_members": FOUNDERS})
    assert not [step for step in run.of_type(REMOTE) if step.short_name.endswith("-leave")]


def test_a_shrink_to_fewer_than_a_majority_is_refused_before_any_resource() -> None:
    with pytest.raises(ProgramError) as failure:
        run_program({**QEMU, "memberCount": 1}, "local", recorded_outputs=RUNNING)
    assert ("etcd-cluster:memberCount = 1: would remove etcd-3, then etcd-2 from etcd cluster "
            "local") in str(failure.value)
    assert "fewer than a majority (2) of its 3" in str(failure.value)
    assert "`pulumi config set memberCount 3`" in str(failure.value)
    assert [reg.type for reg in failure.value.registrations] == ["pulumi:pulumi:Stack"]


def test_a_shrink_of_protected_members_is_refused_before_any_resource() -> None:
    with pytest.raises(ProgramError) as failure:
        run_program({**QEMU, "memberCount": 3, "protectMembers": True}, "local",
                    recorded_outputs=FIVE)
    assert "protectMembers is on" in str(failure.value)
    assert [reg.type for reg in failure.value.registrations] == ["pulumi:pulumi:Stack"]


def test_a_grow_without_the_rollout_is_refused_before_any_resource() -> None:
    with pytest.raises(ProgramError) as failure:
        run_program({**QEMU, "memberCount": 5, "rolloutVia": "none"}, "local",
                    recorded_outputs=RUNNING)
    assert "would add etcd-4, then etcd-5 to etcd cluster local" in str(failure.value)
    assert "rolloutVia is none" in str(failure.value)
    assert [reg.type for reg in failure.value.registrations] == ["pulumi:pulumi:Stack"]


def test_the_events_cluster_is_checked_against_its_own_recorded_members() -> None:
    recorded: dict[str, Any] = {
        **RUNNING, "events_members": [{"name": f"etcd-events-{n}"} for n in (1, 2, 3)]}
    config = {**QEMU, "eventsCluster": True, "eventsMemberCount": 1}
    with pytest.raises(ProgramError) as failure:
        run_program(config, "local", recorded_outputs=recorded)
    message = str(failure.value)
    assert ("etcd-cluster:eventsMemberCount = 1: would remove etcd-events-3, then etcd-events-2 "
            "from etcd cluster local-events") in message
    assert "fewer than a majority" in message
    assert "memberCount =" not in message.replace("eventsMemberCount", "")
    run_program(config, "local", recorded_outputs={"members": RUNNING["members"]})
