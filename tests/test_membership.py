"""The membership of a running cluster, against the members the settings want (pure model).

A running cluster's members are what the stack's last update recorded in its `members` output,
its founders what it recorded in `founding_members`. A grow is planned (the founders stay, every
other member joins) and so is a shrink (the members the count drops leave, highest number
first). Refused, with the members it would add or remove and the fix: a shrink that leaves fewer
than a majority of the running members, a shrink of protected members, and any change without
the rollout's SSH channel.
"""

from __future__ import annotations

from model.membership import (
    membership_change,
    membership_plan,
    recorded_founder_names,
    recorded_member_names,
)

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


def test_a_grow_with_the_rollout_is_not_refused() -> None:
    change = membership_change("main", "memberCount", RUNNING, [*RUNNING, "etcd-4", "etcd-5"])
    assert change is not None
    assert change.refusal(rollout_enabled=True, protect_members=True) is None


FIVE = (*RUNNING, "etcd-4", "etcd-5")
SEVEN = (*FIVE, "etcd-6", "etcd-7")


def test_a_shrink_that_keeps_a_majority_of_the_running_members_is_not_refused() -> None:
    for running, wanted in ((FIVE, RUNNING), (SEVEN, FIVE)):
        change = membership_change("main", "memberCount", running, wanted)
        assert change is not None
        assert change.refusal(rollout_enabled=True, protect_members=False) is None


def test_a_shrink_to_fewer_than_a_majority_is_refused_naming_the_step_it_may_take() -> None:
    change = membership_change("main", "memberCount", SEVEN, RUNNING)
    assert change is not None
    message = change.refusal(rollout_enabled=True, protect_members=False)
    assert message is not None
    assert message.startswith(
        "etcd-cluster:memberCount = 3: would remove etcd-7, then etcd-6, then etcd-5, then "
        "etcd-4 from etcd cluster main, which runs with 7 members (etcd-1, etcd-2, etcd-3, "
        "etcd-4, etcd-5, etcd-6, etcd-7), leaving 3, fewer than a majority (4) of its 7")
    assert "a `pulumi up` removes at most 3 of 7 members" in message
    assert "Shrink in steps: `pulumi config set memberCount 5` and `pulumi up` first" in message
    assert "`pulumi config set memberCount 7`" in message


def test_a_three_member_cluster_cannot_shrink_to_one_and_the_message_says_what_can() -> None:
    change = membership_change("main", "memberCount", RUNNING, ["etcd-1"])
    assert change is not None
    message = change.refusal(rollout_enabled=True, protect_members=False)
    assert message is not None
    assert message.startswith("etcd-cluster:memberCount = 1: would remove etcd-3, then etcd-2 "
                              "from etcd cluster main, which runs with 3 members (etcd-1, "
                              "etcd-2, etcd-3), leaving 1, fewer than a majority (2) of its 3")
    assert "a cluster of 3 cannot shrink by `pulumi up`" in message
    assert "Backups and disaster recovery" in message
    assert "`pulumi config set memberCount 3`" in message


def test_a_shrink_of_protected_members_is_refused_with_how_to_lift_the_protection() -> None:
    change = membership_change("main", "memberCount", FIVE, RUNNING)
    assert change is not None
    message = change.refusal(rollout_enabled=True, protect_members=True)
    assert message is not None
    assert message.startswith("etcd-cluster:memberCount = 3: would remove etcd-5, then etcd-4 "
                              "from etcd cluster main")
    assert "protectMembers is on" in message
    assert "`pulumi config set protectMembers false` and `pulumi up`" in message
    assert "`pulumi config set protectMembers true`" in message
    assert "`pulumi config set memberCount 5`" in message


def test_a_shrink_without_the_rollout_is_refused_naming_rollout_via() -> None:
    change = membership_change("main", "memberCount", FIVE, RUNNING)
    assert change is not None
    message = change.refusal(rollout_enabled=False, protect_members=False)
    assert message is not None
    assert "members leave over the rollout's SSH channel and rolloutVia is none" in message
    assert "`pulumi config set rolloutVia private`" in message


def test_a_shrink_plans_the_leavers_highest_number_first_and_keeps_the_founders_that_stay(
        ) -> None:
    plan = membership_plan(FIVE, RUNNING, RUNNING)
    assert plan.leavers == ("etcd-5", "etcd-4")
    assert plan.founders == RUNNING and plan.joiners == ()
    dropped_founder = membership_plan(FIVE, FIVE, RUNNING)
    assert dropped_founder.founders == RUNNING and dropped_founder.leavers == ("etcd-5", "etcd-4")


def test_a_grow_without_the_rollout_is_refused_naming_rollout_via_and_the_fix() -> None:
    change = membership_change("events", "eventsMemberCount", ["etcd-1"],
                               ["etcd-1", "etcd-2", "etcd-3"])
    assert change is not None
    message = change.refusal(rollout_enabled=False, protect_members=False)
    assert message is not None
    assert message.startswith("etcd-cluster:eventsMemberCount = 3: would add etcd-2, then "
                              "etcd-3 to etcd cluster events, which runs with 1 member (etcd-1)")
    assert "rolloutVia is none" in message
    assert "`pulumi config set rolloutVia private`" in message
    assert "`pulumi config set eventsMemberCount 1`" in message


def test_a_new_cluster_is_founded_by_every_member() -> None:
    plan = membership_plan(None, None, ["etcd-1", "etcd-2", "etcd-3"])
    assert plan.founders == RUNNING and plan.joiners == () and plan.running == ()


def test_a_grow_keeps_the_founders_and_the_new_members_join_lowest_number_first() -> None:
    plan = membership_plan(RUNNING, RUNNING, [*RUNNING, "etcd-4", "etcd-5"])
    assert plan.founders == RUNNING
    assert plan.joiners == ("etcd-4", "etcd-5") and plan.running == RUNNING


def test_members_that_joined_earlier_stay_joiners_of_the_running_cluster() -> None:
    five = [*RUNNING, "etcd-4", "etcd-5"]
    plan = membership_plan(five, RUNNING, five)
    assert plan.founders == RUNNING
    assert plan.joiners == ("etcd-4", "etcd-5") and plan.running == tuple(five)


def test_a_stack_recorded_before_founders_were_takes_its_running_members_for_founders() -> None:
    plan = membership_plan(RUNNING, None, [*RUNNING, "etcd-4", "etcd-5"])
    assert plan.founders == RUNNING and plan.joiners == ("etcd-4", "etcd-5")


def test_the_recorded_founders_are_the_names_the_output_lists() -> None:
    assert recorded_founder_names({"founding_members": list(RUNNING)}, "founding_members") == RUNNING
    assert recorded_founder_names({}, "founding_members") is None
    assert recorded_founder_names({"founding_members": [1]}, "founding_members") is None
