"""What a shrink and a replacement by `pulumi up` rely on, checked on the real engine with a
small program of `command.local.Command`s (tests/data/engine-membership-order/) that stand for
the machines and the membership steps and log the order the engine runs them in.

- A shrink no longer registers the leaving members' machines and registers their leave steps
  (on a member that stays) and the remaining members' rollout steps (components/rollout.py):
  the engine deletes the machines only after every step has run, so each member is out of the
  etcd cluster before its machine goes (a machine deleted while etcd still counts it as a voter
  costs the cluster its fault tolerance, or its quorum).
- A replacement raises the member's generation, the `replacement_trigger` of its machine and
  its join step; the machine is `delete_before_replace` and `depends_on` the leave step: the
  member leaves, then its machine is deleted, then the new one created, then it joins. The
  engine does not replace a resource whose trigger was never set before, so every machine
  carries one from its creation (generation 0). Nothing runs in the update after.

The program's own steps are checked under mocks (tests/test_program_membership.py) and its
membership scripts on real etcd (tests/test_membership_scripts.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from engine import Project, scratch_dir, toolchain_or_skip

pytestmark = pytest.mark.real

PROGRAM = Path(__file__).parent / "data" / "engine-membership-order"
PROJECT = "engine-membership-order"
STACK = "order"


def config(log: Path, **values: object) -> dict[str, object]:
    return {f"{PROJECT}:{key}": value for key, value in {"log": str(log), **values}.items()}


def update(project: Project, log: Path, **values: object) -> list[str]:
    """`pulumi up` with `values` as the stack's configuration; the commands it ran, in order."""
    (project.directory / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({
        "config": config(log, **values)}))
    project.pulumi("up", "--yes", "--skip-preview")
    ran = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return ran


@pytest.fixture
def project() -> Iterator[Project]:
    toolchain = toolchain_or_skip()
    with scratch_dir("engine-order-") as directory:
        project = Project(directory / "project", toolchain, source=PROGRAM,
                          files=("Pulumi.yaml", "__main__.py"))
        project.pulumi("stack", "init", STACK, "--non-interactive")
        yield project


def test_an_update_deletes_the_machines_it_no_longer_registers_after_their_leave_steps(
        project: Project) -> None:
    log = project.directory / "log"
    created = update(project, log, machines=["m1", "m2", "m3"])
    assert sorted(created) == ["create m1", "create m2", "create m3",
                               "join m1", "join m2", "join m3", "rollout 3"]
    # 3 -> 1: m3, then m2 leave.
    ran = update(project, log, machines=["m1"], leaving=["m3", "m2"])
    assert ran[:3] == ["leave m3", "leave m2", "rollout 1"], ran
    assert sorted(ran[3:]) == ["delete m2", "delete m3"], ran


def test_a_raised_generation_replaces_one_machine_after_its_leave_and_before_its_join(
        project: Project) -> None:
    log = project.directory / "log"
    update(project, log, machines=["m1", "m2", "m3"])
    ran = update(project, log, machines=["m1", "m2", "m3"], replacing="m2",
                 generations={"m2": 1})
    assert ran == ["leave m2", "delete m2", "create m2", "join m2"], ran
    # The same generation again, the replacement setting gone: nothing runs.
    assert update(project, log, machines=["m1", "m2", "m3"], generations={"m2": 1}) == []


def test_a_machine_created_without_a_trigger_is_not_replaced_when_it_gets_one(
        project: Project) -> None:
    """Why the program refuses a replacement on a stack its last update did not give
    generations: the first trigger a machine gets replaces nothing."""
    log = project.directory / "log"
    update(project, log, machines=["m1", "m2", "m3"], untriggered=True)
    ran = update(project, log, machines=["m1", "m2", "m3"], generations={"m2": 1})
    assert not [line for line in ran if line.startswith(("delete", "create"))], ran
