"""A running cluster's membership under mocks: the program reads the members its stack's last
update recorded, and refuses another count before it registers any resource."""

from __future__ import annotations

from typing import Any

import pytest
from program import ProgramError, run_program
from test_program_local import QEMU

RUNNING = {"members": [{"name": f"etcd-{n}"} for n in (1, 2, 3)]}


def test_a_running_cluster_with_its_own_count_is_built_as_before() -> None:
    run = run_program(QEMU, "local", recorded_outputs=RUNNING)
    assert [member["name"] for member in run.outputs["members"].value] == [
        "etcd-1", "etcd-2", "etcd-3"]


@pytest.mark.parametrize("count", [1, 5])
def test_a_new_member_count_for_a_running_cluster_is_refused_before_any_resource(
        count: int) -> None:
    with pytest.raises(ProgramError) as failure:
        run_program({**QEMU, "memberCount": count}, "local", recorded_outputs=RUNNING)
    assert f"etcd-cluster:memberCount = {count}: would " in str(failure.value)
    assert "`pulumi config set memberCount 3`" in str(failure.value)
    assert [reg.type for reg in failure.value.registrations] == ["pulumi:pulumi:Stack"]


def test_a_new_stack_founds_its_cluster_with_any_valid_count() -> None:
    run = run_program({**QEMU, "memberCount": 5}, "local", recorded_outputs={})
    assert len(run.outputs["members"].value) == 5


def test_the_events_cluster_is_checked_against_its_own_recorded_members() -> None:
    recorded: dict[str, Any] = {
        **RUNNING, "events_members": [{"name": f"etcd-events-{n}"} for n in (1, 2, 3)]}
    config = {**QEMU, "eventsCluster": True, "eventsMemberCount": 1}
    with pytest.raises(ProgramError) as failure:
        run_program(config, "local", recorded_outputs=recorded)
    message = str(failure.value)
    assert ("etcd-cluster:eventsMemberCount = 1: would remove etcd-events-3, then etcd-events-2 "
            "in etcd cluster local-events") in message
    assert "memberCount =" not in message.replace("eventsMemberCount", "")
    run_program(config, "local", recorded_outputs={"members": RUNNING["members"]})
