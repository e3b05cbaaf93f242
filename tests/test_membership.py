"""The membership of a running cluster, against the members the settings want (pure model).

A running cluster's members are what the stack's last update recorded in its `members` output.
Until `pulumi up` grows and shrinks clusters through etcd's learners, a count that differs from
the running cluster's is refused with the members it would add or remove and the fix.
"""

from __future__ import annotations

import pytest

from model.membership import membership_change, recorded_member_names

RUNNING = ("etcd-1", "etcd-2", "etcd-3")


def test_a_stack_that_records_no_members_has_no_running_cluster() -> None:
    assert recorded_member_names({}, "members") is None
    assert recorded_member_names({"members": []}, "members") is None
    assert recorded_member_names({"members": "etcd-1"}, "members") is None


def test_the_recorded_members_are_the_names_of_the_members_output_in_order() -> None:
    outputs = {"members": [{"name": "etcd-1", "fqdn": "a"}, {"name": "etcd-2", "fqdn": "b"}],
               "events_members": [{"name": "etcd-1"}]}
    assert recorded_member_names(outputs, "members") == ("etcd-1", "etcd-2")
    assert recorded_member_names(outputs, "events_members") == ("etcd-1",)


def test_a_members_output_it_cannot_read_is_not_taken_for_a_running_cluster() -> None:
    assert recorded_member_names({"members": [{"fqdn": "a"}]}, "members") is None
    assert recorded_member_names({"members": [{"name": ""}]}, "members") is None


def test_a_new_cluster_and_an_unchanged_one_are_no_membership_change() -> None:
    assert membership_change("main", "memberCount", None, ["etcd-1"]) is None
    assert membership_change("main", "memberCount", RUNNING, list(RUNNING)) is None


def test_a_grow_adds_the_new_members_lowest_number_first() -> None:
    change = membership_change("main", "memberCount", RUNNING, [*RUNNING, "etcd-4", "etcd-5"])
    assert change is not None
    assert change.joining == ("etcd-4", "etcd-5")
    assert change.leaving == ()


def test_a_shrink_removes_the_highest_numbered_members_first() -> None:
    change = membership_change("main", "memberCount", [*RUNNING, "etcd-4", "etcd-5"], RUNNING)
    assert change is not None
    assert change.leaving == ("etcd-5", "etcd-4")
    assert change.joining == ()


@pytest.mark.parametrize(("wanted", "plan"), [
    (5, "would add etcd-4, then etcd-5 in etcd cluster main"),
    (1, "would remove etcd-3, then etcd-2 in etcd cluster main"),
])
def test_a_membership_change_is_refused_with_the_setting_the_plan_and_the_fix(
        wanted: int, plan: str) -> None:
    change = membership_change("main", "memberCount", RUNNING,
                               [f"etcd-{n}" for n in range(1, wanted + 1)])
    assert change is not None
    message = change.refusal()
    assert message.startswith(f"etcd-cluster:memberCount = {wanted}: {plan}, which runs with "
                              "3 members (etcd-1, etcd-2, etcd-3)")
    assert "`pulumi config set memberCount 3`" in message
    assert "Replacing one member" in message
