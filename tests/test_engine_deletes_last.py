"""What a shrink by `pulumi up` relies on, checked on the real engine: in an update that stops
registering some resources, the engine deletes them only after every step the program
registers has run.

A shrink no longer registers the leaving members' machines, and registers their leave steps
(run on a member that stays) and the remaining members' rollout steps after them
(components/rollout.py). So each leaving member is out of the etcd cluster before its machine
is deleted: a machine deleted while etcd still counts it as a voter would cost the cluster its
fault tolerance, or its quorum. A small program of `command.local.Command`s
(tests/data/engine-deletes-last/) stands for the machines and the steps, and logs the order the
engine runs them in; the program's own shrink is checked under mocks
(tests/test_program_membership.py) and its leave script on real etcd
(tests/test_membership_scripts.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from engine import Project, scratch_dir, toolchain_or_skip

pytestmark = pytest.mark.real

PROGRAM = Path(__file__).parent / "data" / "engine-deletes-last"
STACK = "order"
PROJECT = "engine-deletes-last"


def test_an_update_deletes_the_machines_it_no_longer_registers_after_their_leave_steps() -> None:
    toolchain = toolchain_or_skip()
    with scratch_dir("engine-order-") as directory:
        log = directory / "log"
        project = Project(directory / "project", toolchain, source=PROGRAM,
                          files=("Pulumi.yaml", "__main__.py"))
        project.init_stack(STACK, config(log, machines=["m1", "m2", "m3"]))
        project.pulumi("up", "--yes", "--skip-preview")
        assert sorted(log.read_text().splitlines()) == [
            "create m1", "create m2", "create m3", "rollout 3"]
        log.unlink()

        # 3 -> 1: m3, then m2 leave.
        (project.directory / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({
            "config": config(log, machines=["m1"], leaving=["m3", "m2"])}))
        project.pulumi("up", "--yes", "--skip-preview")
        ran = log.read_text().splitlines()
        assert ran[:3] == ["leave m3", "leave m2", "rollout 1"], ran
        assert sorted(ran[3:]) == ["delete m2", "delete m3"], ran


def config(log: Path, **values: object) -> dict[str, object]:
    return {f"{PROJECT}:{key}": value for key, value in {"log": str(log), **values}.items()}
