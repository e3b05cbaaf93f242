"""Replacing one member (pure model): which run replaces, what the plan does with the member,
and the refusals with their fixes."""

from __future__ import annotations

from model.membership import membership_plan, recorded_generations
from model.replacement import (
    ReplacementRequest,
    replacing_now,
    stays_to_run_the_leave,
)

RUNNING = ("etcd-1", "etcd-2", "etcd-3")


def test_the_member_the_setting_names_is_replaced_once_while_the_setting_stays() -> None:
    assert replacing_now("etcd-2", None, RUNNING) == "etcd-2"
    assert replacing_now("etcd-2", "etcd-2", RUNNING) is None
    assert replacing_now("etcd-2", "etcd-3", RUNNING) == "etcd-2"
    assert replacing_now(None, "etcd-2", RUNNING) is None
    assert replacing_now("etcd-4", None, RUNNING) is None
    assert replacing_now("etcd-2", None, None) is None


def test_a_replaced_member_joins_again_with_one_more_generation_and_is_no_founder() -> None:
    plan = membership_plan(RUNNING, RUNNING, RUNNING, {"etcd-1": 0, "etcd-2": 4, "etcd-3": 0},
                           replacing="etcd-2")
    assert plan.founders == ("etcd-1", "etcd-3")
    assert plan.joiners == ("etcd-2",)
    assert plan.leavers == ()
    assert dict(plan.generations) == {"etcd-1": 0, "etcd-2": 5, "etcd-3": 0}


def test_the_lowest_numbered_other_member_runs_the_leave() -> None:
    assert stays_to_run_the_leave("etcd-1", RUNNING) == "etcd-2"
    assert stays_to_run_the_leave("etcd-3", RUNNING) == "etcd-1"


def test_generations_are_read_from_the_members_output_or_none_when_any_is_missing() -> None:
    outputs = {"members": [{"name": "etcd-1", "generation": 0}, {"name": "etcd-2", "generation": 2.0}]}
    assert recorded_generations(outputs, "members") == {"etcd-1": 0, "etcd-2": 2}
    assert recorded_generations({"members": [{"name": "etcd-1"}]}, "members") is None
    assert recorded_generations({}, "members") is None


def request(**overrides: object) -> ReplacementRequest:
    values: dict[str, object] = {"cluster": "prod", "count_setting": "memberCount",
                                 "member": "etcd-2", "running": RUNNING, "wanted": RUNNING,
                                 "generations_recorded": True}
    return ReplacementRequest(**{**values, **overrides})  # type: ignore[arg-type]


def test_a_replacement_of_a_healthy_setup_is_not_refused() -> None:
    assert request().refusal(rollout_enabled=True, protect_members=False) is None


def test_each_refusal_names_the_setting_the_member_and_the_fix() -> None:
    for message in (
            request(wanted=(*RUNNING, "etcd-4", "etcd-5")).refusal(True, False),
            request(running=("etcd-1",), wanted=("etcd-1",), member="etcd-1").refusal(True, False),
            request(generations_recorded=False).refusal(True, False),
            request().refusal(False, False),
            request().refusal(True, True)):
        assert message is not None
        assert message.startswith("etcd-cluster:replaceMember = etcd-")
        assert "`pulumi config rm replaceMember`" in message
    count = request(wanted=(*RUNNING, "etcd-4", "etcd-5")).refusal(True, False)
    assert count is not None and "`pulumi config set memberCount 3`" in count
    protected = request().refusal(True, True)
    assert protected is not None and "`pulumi config set protectMembers false`" in protected


def test_a_cluster_whose_founders_were_all_replaced_keeps_no_founder_in_the_next_run() -> None:
    from model.membership import recorded_founder_names
    assert recorded_founder_names({"founding_members": []}, "founding_members") == ()
    assert recorded_founder_names({}, "founding_members") is None
    plan = membership_plan(("etcd-events-1",), (), ("etcd-events-1",))
    assert plan.founders == () and plan.joiners == ("etcd-events-1",)
