"""`etcd-defrag` (cloudinit/scripts/) on a real cluster, run as the timer runs it on every member.

A real 3-member cluster of the program's own user-data (network-namespace harness) with a small
backend quota, on etcd 3.4 and 3.6:
- a history of overwrites is compacted away, leaving free pages; the script runs on every
  member while a client keeps writing: only the leader acts, it defragments the followers first
  and itself last, one at a time, every file shrinks, and no acknowledged write is lost;
- right after, nothing has enough free space: every member is left as it is;
- a NOSPACE alarm (the quota filled by overwrites) is cleared by the one documented command,
  `etcd-defrag --recover-nospace`: compacted, every member defragmented, the alarm disarmed,
  and the cluster takes writes again.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from program import ProgramRun
from realcluster.harness import Cluster, Result
from realcluster.pytest_support import new_cluster, report
from realcluster.rollout import MemberScripts
from realcluster.writer import Writer

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[1]
DEFRAG = REPO / "cloudinit" / "scripts" / "etcd-defrag"
QUOTA = 8 * 1024 * 1024
# One argument stays below the kernel's 128 KiB per-argument limit.
VALUE = base64.b64encode(b"x" * 60_000).decode()


@dataclass
class Defrag:
    cluster: Cluster
    scripts: dict[str, MemberScripts]

    def run(self, name: str, *args: str) -> Result:
        return self.scripts[name].run(DEFRAG, *args, timeout=600)

    def leader(self) -> str:
        leader = self.cluster.leader()
        assert leader is not None, "the members agree on no leader"
        return leader

    def db_sizes(self) -> dict[str, int]:
        return {name: int(status["dbSize"])
                for name, status in self.cluster.statuses(self.cluster.names).items()}

    def revision(self) -> int:
        statuses = self.cluster.statuses(self.cluster.names)
        return max(int(status["header"]["revision"]) for status in statuses.values())


@pytest.fixture(scope="module", params=["3.4", "3.6"], ids=lambda line: f"etcd{line}")
def defrag(request: pytest.FixtureRequest, program: Callable[..., ProgramRun]) -> Defrag:
    cluster = new_cluster(request, program, (request.param, 3),
                          settings={"quotaBackendBytes": QUOTA})
    return Defrag(cluster, {name: MemberScripts(cluster, member)
                            for name, member in cluster.members.items()})


def ok(result: Result, what: str) -> Result:
    assert result.ok, f"{what} failed:\n{result}"
    return result


def overwrite(cluster: Cluster, times: int) -> Result | None:
    """The same few keys written again and again (history grows, live data does not); the
    first refused write, or None."""
    for number in range(times):
        put = cluster.etcdctl("put", f"/registry/defrag/{number % 4}", VALUE, command_timeout=10)
        if not put.ok:
            return put
    return None


def test_only_the_leader_defragments_followers_first_itself_last_and_a_writer_loses_nothing(
        defrag: Defrag, request: pytest.FixtureRequest) -> None:
    cluster = defrag.cluster
    assert overwrite(cluster, 60) is None
    ok(cluster.etcdctl("compact", str(defrag.revision()), "--physical", command_timeout=30),
       "compact")
    before = defrag.db_sizes()
    leader = defrag.leader()
    with Writer(cluster, "/registry/defrag-writer/") as writer:
        writer.wait_for(10)
        outcomes = {name: ok(defrag.run(name, "--min-free-bytes", "1048576"), f"etcd-defrag on {name}")
                    for name in cluster.names}
        writer.wait_for(10)
    for name, outcome in outcomes.items():
        if name != leader:
            assert "does not lead the cluster: the leader defragments the members" in outcome.stdout
    shown = outcomes[leader].stdout
    done = re.findall(r"etcd-defrag: (etcd-\d): defragmented in", shown)
    followers = sorted(name for name in cluster.names if name != leader)
    assert done == [*followers, leader], shown
    after = defrag.db_sizes()
    assert all(after[name] < before[name] for name in before), (before, after)
    lost = writer.lost()
    assert not lost, f"{len(lost)} of {len(writer.acknowledged)} acknowledged writes lost"
    report(request, "database sizes before -> after", {name: f"{before[name]} -> {after[name]}"
                                                       for name in before})

    again = ok(defrag.run(leader, "--min-free-bytes", "1048576"), "etcd-defrag again")
    assert again.stdout.count("left as it is") == 3, again.stdout
    assert "defragmented 0 of 3 member(s)" in again.stdout


def test_a_nospace_alarm_is_cleared_by_one_command_and_writes_work_again(
        defrag: Defrag, request: pytest.FixtureRequest) -> None:
    cluster = defrag.cluster
    refused = overwrite(cluster, 400)
    assert refused is not None, f"no NOSPACE after 400 overwrites with a {QUOTA} byte quota"
    assert "database space exceeded" in refused.output, refused
    alarms = ok(cluster.etcdctl("alarm", "list"), "alarm list")
    assert "NOSPACE" in alarms.stdout, alarms
    # The scheduled run reports it: its unit fails, naming the alarm and the recovery.
    reported = defrag.run(defrag.leader())
    assert reported.returncode == 1, reported
    assert "alarm raised: " in reported.stderr and "NOSPACE" in reported.stderr, reported
    assert "recover with etcd-defrag --recover-nospace" in reported.stderr, reported

    recovered = ok(defrag.run(defrag.leader(), "--recover-nospace"), "etcd-defrag --recover-nospace")
    shown = recovered.stdout
    assert "compacted the history up to revision" in shown, shown
    assert "defragmented 3 of 3 member(s)" in shown, shown
    assert "alarms disarmed; the cluster takes writes again" in shown, shown
    assert ok(cluster.etcdctl("alarm", "list"), "alarm list").stdout.strip() == ""
    ok(cluster.etcdctl("put", "/registry/defrag/after", "ok"), "a write after the recovery")
    report(request, "recovery", shown.strip().replace("\n", " | "))
