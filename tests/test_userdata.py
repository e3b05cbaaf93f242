"""Rendered user-data, checked by cloud-init's own validator and by reading what it holds.

Pure rendering (no Pulumi): `MemberUserData` is built directly, with real certificates made by
`cryptography` (tests/realcheck.py). The matrix is every version line x 1/3/5/7 members x an
ECDSA and an RSA key algorithm; `cloud-init schema` runs as a subprocess of the system Python.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import realcheck
import yaml
from cloud_config import installed_files, write_file_contents
from realcheck import LINES, MEMBER_COUNTS, VERSION_OF_LINE

from cloudinit import member_files, unit
from cloudinit.userdata import (
    SCRIPTS,
    USER_DATA_LIMITS,
    MemberPki,
    MemberUserData,
    check_size,
    cloud_config,
    render_user_data,
)
from model.cluster_spec import EtcdRelease
from model.settings import Backend, EtcdTuning

ALGORITHMS = ("ecdsa-p256", "rsa-4096")
ETCD_UNIT = "/etc/systemd/system/etcd.service"
INITIAL_CLUSTER_FILE = "/etc/etcd/initial-cluster.env"
GUARD_UNIT = "/etc/systemd/system/etcd-metadata-guard.service"


def specs(line: str, members: int, algorithm: str = "ecdsa-p256") -> list[MemberUserData]:
    settings, topology = realcheck.topology_for(line, members)
    pki = realcheck.cluster_pki(algorithm)
    version = VERSION_OF_LINE[line]
    release = EtcdRelease(
        version=version,
        url=f"https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-amd64.tar.gz",
        sha256=settings.etcd_sha256,
    )
    return [
        MemberUserData(
            member=member,
            topology=topology,
            etcd_line=line,
            tuning=settings.tuning,
            release=release,
            data_device=f"/dev/disk/by-id/scsi-0DO_Volume_{topology.cluster_name}-{member.name}",
            pki=pki.member(member),
        )
        for member in topology.members
    ]


@functools.cache
def rendered(line: str, members: int,
             algorithm: str = "ecdsa-p256") -> tuple[tuple[MemberUserData, str], ...]:
    return tuple((spec, render_user_data(spec)) for spec in specs(line, members, algorithm))


def documents(line: str, members: int,
              algorithm: str = "ecdsa-p256") -> list[tuple[MemberUserData, dict[str, Any]]]:
    return [(spec, yaml.safe_load(text)) for spec, text in rendered(line, members, algorithm)]


def files_by_path(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in document["write_files"]}


def unit_entries(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (a key may repeat) of a unit file."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


MATRIX = pytest.mark.parametrize(("line", "members"), [(ln, n) for ln in LINES for n in MEMBER_COUNTS])


# --- cloud-init's own validator -------------------------------------------------------------

@pytest.mark.real
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@MATRIX
def test_every_user_data_passes_cloud_init_schema(line: str, members: int, algorithm: str,
                                                  tmp_path: Path) -> None:
    paths = []
    for spec, text in rendered(line, members, algorithm):
        path = tmp_path / f"{spec.member.name}.yaml"
        path.write_text(text)
        paths.append(path)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(realcheck.cloud_init_schema, paths))
    for path, result in zip(paths, results, strict=True):
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"cloud-init schema rejected {path.name}:\n{output}"
        assert "Valid cloud-config" in output, output
        assert "deprecat" not in output.lower(), f"{path.name} uses deprecated keys:\n{output}"


@pytest.mark.real
def test_cloud_init_schema_rejects_a_hand_written_runcmd_with_colon_space(tmp_path: Path) -> None:
    # The control for the test above: the pitfall the YAML serializer avoids must fail validation.
    path = tmp_path / "bad.yaml"
    path.write_text("#cloud-config\nruncmd:\n  - echo etcd: started\n")
    result = realcheck.cloud_init_schema(path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Valid cloud-config" not in output
    # Refused for the reason under test: the entry became a mapping, not a command.
    assert "Cloud config schema errors: runcmd.0: {'echo etcd': 'started'} is not valid" in output, output


# --- what the document holds ----------------------------------------------------------------

# A member whose user-data is checked in whole (tests/data/user-data/): etcd-1 of the 3-member
# `dev` cluster, with placeholder PEM documents (real ones are random; they are checked above and
# in test_written_certificates_and_scripts_are_the_inputs). A change of the rendered document
# shows as a diff of that file in review; rewrite it only for a change you meant:
#   ETCD_WRITE_USER_DATA_DOCUMENTS=1 .venv/bin/python -m pytest tests/test_userdata.py -k checked_in
DOCUMENTS_DIR = realcheck.DATA_DIR / "user-data"


def _placeholder(kind: str, what: str) -> str:
    return f"-----BEGIN {kind}-----\nplaceholder {what}\n-----END {kind}-----\n"


PLACEHOLDER_PKI = MemberPki(
    client_ca_pem=_placeholder("CERTIFICATE", "client CA"),
    peer_ca_pem=_placeholder("CERTIFICATE", "peer CA"),
    server_cert_pem=_placeholder("CERTIFICATE", "server etcd-1"),
    server_key_pem=_placeholder("EC PRIVATE KEY", "server etcd-1"),
    peer_cert_pem=_placeholder("CERTIFICATE", "peer etcd-1"),
    peer_key_pem=_placeholder("EC PRIVATE KEY", "peer etcd-1"),
    healthcheck_cert_pem=_placeholder("CERTIFICATE", "healthcheck"),
    healthcheck_key_pem=_placeholder("EC PRIVATE KEY", "healthcheck"),
)


def checked_in_spec(line: str) -> MemberUserData:
    spec = specs(line, 3)[0]
    return MemberUserData(**{**spec.__dict__, "pki": PLACEHOLDER_PKI})


@pytest.mark.parametrize("line", ["3.4", "3.6"])
def test_the_rendered_document_is_the_checked_in_one(line: str) -> None:
    expected_path = DOCUMENTS_DIR / f"dev-etcd-1-of-3-etcd{line}.yaml"
    text = render_user_data(checked_in_spec(line))
    if os.environ.get("ETCD_WRITE_USER_DATA_DOCUMENTS") == "1":
        expected_path.write_text(text)
    expected = expected_path.read_text()
    assert text.startswith("#cloud-config\n")
    assert yaml.safe_load(text) == yaml.safe_load(expected), (
        f"the user-data differs from {expected_path.relative_to(realcheck.REPO)}")
    assert text == expected, "same document, different text (key order or YAML style changed)"


@MATRIX
def test_rendered_text_is_a_cloud_config_with_the_checked_in_sections(line: str, members: int) -> None:
    sections = set(yaml.safe_load((DOCUMENTS_DIR / "dev-etcd-1-of-3-etcd3.6.yaml").read_text()))
    for _spec, text in rendered(line, members):
        assert text.startswith("#cloud-config\n")
        assert set(yaml.safe_load(text)) == sections


@MATRIX
def test_every_runcmd_entry_is_a_list_of_strings(line: str, members: int) -> None:
    for _spec, document in documents(line, members):
        assert document["runcmd"], "no runcmd"
        for entry in document["runcmd"]:
            assert isinstance(entry, list), f"runcmd entry is not a list (a shell string): {entry!r}"
            assert all(isinstance(arg, str) for arg in entry), entry


@MATRIX
def test_private_keys_are_0600_and_the_etcd_keys_are_owned_by_etcd_and_deferred(line: str,
                                                                                members: int) -> None:
    for spec, document in documents(line, members):
        files = files_by_path(document)
        # A file holding a key (not a script that mentions keys): it opens with a PEM key header.
        keys = {path: entry for path, entry in files.items()
                if entry["content"].startswith("-----BEGIN ")
                and "PRIVATE KEY-----" in entry["content"].splitlines()[0]}
        paths = spec.paths
        assert set(keys) == {paths.server_key, paths.peer_key, paths.healthcheck_key}
        for path, entry in keys.items():
            assert entry["permissions"] == "0600", path
        for path in (paths.server_key, paths.peer_key):
            assert files[path]["owner"] == "etcd:etcd", path
            # The etcd user exists only once users-groups ran: written in the final stage.
            assert files[path]["defer"] is True, path
        for entry in files.values():
            if entry["owner"] != "root:root":
                assert entry.get("defer") is True, entry["path"]
        assert files["/etc/etcd/etcdctl.env"]["permissions"] == "0600"


@MATRIX
def test_written_certificates_and_scripts_are_the_inputs(line: str, members: int) -> None:
    for spec, text in rendered(line, members):
        contents = write_file_contents(text)
        paths, pki = spec.paths, spec.pki
        assert contents[paths.server_cert] == pki.server_cert_pem
        assert contents[paths.peer_key] == pki.peer_key_pem
        assert contents[paths.peer_ca] == pki.peer_ca_pem
        assert contents[paths.client_ca] == pki.client_ca_pem
        installed = installed_files(text)
        for name in SCRIPTS:
            assert installed[f"{unit.SBIN}/{name}"] == member_files.installed_copy(name)


@MATRIX
def test_packages_are_not_upgraded_at_boot(line: str, members: int) -> None:
    for _spec, document in documents(line, members):
        assert document["package_upgrade"] is False
        assert {"curl", "nftables", "ca-certificates"} <= set(document["packages"])


@MATRIX
def test_etcd_is_started_with_no_block(line: str, members: int) -> None:
    for _spec, document in documents(line, members):
        commands = document["runcmd"]
        assert ["systemctl", "start", "--no-block", "etcd.service"] in commands
        for command in commands:
            starts = command[:1] == ["systemctl"] and (
                "start" in command or "restart" in command or "--now" in command
            )
            if starts and any(arg.startswith("etcd.service") or arg == "etcd" for arg in command):
                assert "--no-block" in command, f"would block cloud-init until quorum: {command}"
        # The pinned release is installed (checksum verified) before the unit is started.
        install = next(i for i, c in enumerate(commands) if c[0].endswith("/etcd-install"))
        start = commands.index(["systemctl", "start", "--no-block", "etcd.service"])
        assert install < start


@MATRIX
def test_etcd_unit_is_notify_restarts_raises_nofile_and_requires_its_mount(line: str, members: int) -> None:
    for _spec, document in documents(line, members):
        entries = unit_entries(files_by_path(document)[ETCD_UNIT]["content"])
        service = entries["Service"]
        assert service["Type"] == ["notify"]
        assert service["Restart"] == ["on-failure"]
        assert int(service["LimitNOFILE"][0]) >= 65536
        assert service["User"] == ["etcd"]
        assert entries["Unit"]["RequiresMountsFor"] == [unit.DATA_MOUNTPOINT]
        assert entries["Install"]["WantedBy"] == ["multi-user.target"]


@MATRIX
def test_etcd_starts_only_with_data_or_an_initial_cluster_file_so_a_joiner_never_founds_a_cluster(
        line: str, members: int) -> None:
    for _spec, document in documents(line, members):
        entries = unit_entries(files_by_path(document)[ETCD_UNIT]["content"])
        # `|`: either is enough; neither (a joining machine before the join) skips the start.
        assert entries["Unit"]["ConditionPathExists"] == [
            "|/var/lib/etcd/data/member", f"|{INITIAL_CLUSTER_FILE}"]
        # Optional: a member with data needs no file.
        assert entries["Service"]["EnvironmentFile"] == [f"-{INITIAL_CLUSTER_FILE}"]


def test_a_joining_members_user_data_has_no_initial_cluster_file_and_is_otherwise_a_founders(
) -> None:
    founder = specs("3.6", 3)[2]
    joiner = dataclasses.replace(founder, founders=("etcd-1", "etcd-2"))
    founder_files = files_by_path(cloud_config(founder))
    joiner_files = files_by_path(cloud_config(joiner))
    assert INITIAL_CLUSTER_FILE in founder_files and INITIAL_CLUSTER_FILE not in joiner_files
    assert founder_files[INITIAL_CLUSTER_FILE]["permissions"] == "0644"
    del founder_files[INITIAL_CLUSTER_FILE]
    assert joiner_files == founder_files
    assert cloud_config(joiner)["runcmd"] == cloud_config(founder)["runcmd"]


@pytest.mark.real
def test_a_joining_members_user_data_passes_cloud_init_schema(tmp_path: Path) -> None:
    path = tmp_path / "joiner.yaml"
    path.write_text(render_user_data(dataclasses.replace(specs("3.6", 3)[2], founders=("etcd-1", "etcd-2"))))
    result = realcheck.cloud_init_schema(path)
    assert result.returncode == 0 and "Valid cloud-config" in result.stdout + result.stderr, result


# What etcd-1 of the 3-member `dev` cluster runs, written out (README: flags per version line).
COMMON_FLAGS = [
    "--name=etcd-1", "--data-dir=/var/lib/etcd/data",
    "--listen-client-urls=https://0.0.0.0:2379",
    "--advertise-client-urls=https://etcd-1.dev.example.com:2379",
    "--listen-peer-urls=https://0.0.0.0:2380",
    "--initial-advertise-peer-urls=https://etcd-1.dev.example.com:2380",
    "--listen-metrics-urls=http://0.0.0.0:2381",
    "--initial-cluster-token=etcd-cluster.dev.dev",
    "--cert-file=/etc/etcd/pki/server.crt", "--key-file=/etc/etcd/pki/server.key",
    "--trusted-ca-file=/etc/etcd/pki/ca.crt", "--client-cert-auth=true",
    "--peer-cert-file=/etc/etcd/pki/peer.crt", "--peer-key-file=/etc/etcd/pki/peer.key",
    "--peer-trusted-ca-file=/etc/etcd/pki/peer-ca.crt", "--peer-client-cert-auth=true",
    "--heartbeat-interval=100", "--election-timeout=1000", "--quota-backend-bytes=2147483648",
    "--auto-compaction-mode=periodic", "--auto-compaction-retention=8h", "--snapshot-count=10000",
    "--pre-vote=true", "--logger=zap", "--log-level=info",
]
LINE_FLAGS = {
    "3.4": ["--experimental-initial-corrupt-check=true",
            "--experimental-watch-progress-notify-interval=5s"],
    "3.5": ["--experimental-initial-corrupt-check=true",
            "--experimental-watch-progress-notify-interval=5s"],
    "3.6": ["--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true",
            "--watch-progress-notify-interval=5s"],
    "3.7": ["--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true",
            "--watch-progress-notify-interval=5s"],
}


@pytest.mark.parametrize("line", LINES)
def test_exec_start_is_the_binary_and_the_flags_of_its_line(line: str) -> None:
    _spec, document = documents(line, 3)[0]
    service = unit_entries(files_by_path(document)[ETCD_UNIT]["content"])["Service"]
    assert len(service["ExecStart"]) == 1
    assert shlex.split(service["ExecStart"][0]) == [
        "/usr/local/bin/etcd", *COMMON_FLAGS, *LINE_FLAGS[line]]


@MATRIX
def test_exec_start_names_the_member_and_the_initial_cluster_file_every_founding_peer(
        line: str, members: int) -> None:
    names = [f"etcd-{index}" for index in range(1, members + 1)]
    initial_cluster = ",".join(f"{name}=https://{name}.dev.example.com:2380" for name in names)
    for spec, document in documents(line, members):
        service = unit_entries(files_by_path(document)[ETCD_UNIT]["content"])["Service"]
        assert len(service["ExecStart"]) == 1
        argv = shlex.split(service["ExecStart"][0])
        name = spec.member.name
        assert argv[0] == "/usr/local/bin/etcd"
        assert f"--name={name}" in argv
        # The founding members are in the initial-cluster file the unit reads, not its flags.
        assert not [arg for arg in argv if arg.startswith("--initial-cluster=")]
        assert files_by_path(document)[INITIAL_CLUSTER_FILE]["content"].splitlines()[1:] == [
            f"ETCD_INITIAL_CLUSTER={initial_cluster}", "ETCD_INITIAL_CLUSTER_STATE=new"]
        assert f"--advertise-client-urls=https://{name}.dev.example.com:2379" in argv
        assert f"--initial-advertise-peer-urls=https://{name}.dev.example.com:2380" in argv
        assert argv[-2:] == LINE_FLAGS[line]
        assert len(argv) == 1 + len(COMMON_FLAGS) + len(LINE_FLAGS[line])
        wait = shlex.split(service["ExecStartPre"][0])
        # The peers it waits for are the initial cluster's (the EnvironmentFile=).
        assert wait == ["/usr/local/sbin/etcd-wait-for-peers", "/var/lib/etcd/data"]


DIGITALOCEAN_LIMIT = 64 * 1024


def test_the_digitalocean_user_data_limit_is_64_kib() -> None:
    assert USER_DATA_LIMITS["digitalocean"] == (DIGITALOCEAN_LIMIT, "DigitalOcean's user-data limit")


@pytest.mark.parametrize("line", LINES)
def test_user_data_stays_under_64_kib_with_rsa_4096_for_7_members(line: str) -> None:
    for spec, text in rendered(line, 7, "rsa-4096"):
        size = len(text.encode())
        assert size < DIGITALOCEAN_LIMIT, f"{spec.member.name}: {size} bytes"
        check_size(text, spec.member.fqdn, "digitalocean")


def test_check_size_refuses_user_data_above_the_digitalocean_limit_naming_it() -> None:
    with pytest.raises(ValueError, match=r"etcd-1\.dev\.example\.com is 65550 bytes, above "
                       r"DigitalOcean's user-data limit of 65536 bytes; use ecdsa-p256 keys"):
        check_size("#cloud-config\n" + "x" * DIGITALOCEAN_LIMIT, "etcd-1.dev.example.com",
                   "digitalocean")


@pytest.mark.parametrize("backend", ["qemu", "virtualbox"])
def test_local_backends_take_user_data_of_any_size(backend: Backend) -> None:
    # Their NoCloud seed is the program's own: no provider limit to enforce.
    check_size("#cloud-config\n" + "x" * (2 * DIGITALOCEAN_LIMIT), "etcd-1", backend)


def test_tuning_reaches_the_unit() -> None:
    spec = specs("3.6", 3)[0]
    tuned = MemberUserData(**{**spec.__dict__, "tuning": EtcdTuning(heartbeat_interval_ms=250,
                                                                    election_timeout_ms=2500)})
    exec_start = unit_entries(files_by_path(cloud_config(tuned))[ETCD_UNIT]["content"])
    flags = shlex.split(exec_start["Service"]["ExecStart"][0])
    assert "--heartbeat-interval=250" in flags and "--election-timeout=2500" in flags


# --- systemd's own checker ------------------------------------------------------------------

@pytest.mark.real
@pytest.mark.parametrize("line", LINES)
def test_systemd_analyze_verify_accepts_the_rendered_units(line: str, tmp_path: Path) -> None:
    analyze = realcheck.require_tool("systemd-analyze", "systemd")
    unshare = realcheck.require_tool("unshare", "util-linux")
    realcheck.require_root("mount tmpfs over /usr/local/bin in a private mount namespace")
    spec, text = rendered(line, 3)[0]
    contents = write_file_contents(text)
    units = tmp_path / "units"
    units.mkdir()
    for path in (ETCD_UNIT, GUARD_UNIT):
        (units / Path(path).name).write_text(contents[path])
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    # verify checks that every Exec*= command exists and is executable: the real scripts, and a
    # stand-in for the etcd binary etcd-install puts in /usr/local/bin. Both directories are
    # tmpfs in a private mount namespace, so the host's /usr/local is never touched.
    for name in SCRIPTS:
        shutil.copy(realcheck.SCRIPTS_DIR / name, stubs / name)
    script = (
        'set -e; mount -t tmpfs tmpfs /usr/local/bin; mount -t tmpfs tmpfs /usr/local/sbin; '
        'cp "$1"/* /usr/local/sbin/; chmod 755 /usr/local/sbin/*; '
        'printf "#!/bin/sh\\n" > "$2"; chmod 755 "$2"; shift 2; exec "$@"'
    )
    result = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(stubs),
         spec.paths.binary, analyze, "verify", "--man=no",
         str(units / "etcd.service"), str(units / "etcd-metadata-guard.service")],
        capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    if "Failed to connect to bus" in output or "System has not been booted with systemd" in output:
        pytest.skip(f"systemd-analyze verify cannot run without systemd as PID 1 here: {output}")
    assert result.returncode == 0, output
    ours = [ln for ln in output.splitlines() if "etcd" in ln]
    assert not ours, "systemd-analyze verify complains about the units:\n" + "\n".join(ours)


# --- runcmd as cloud-init runs it -----------------------------------------------------------

def run_runcmd(tmp_path: Path, install_exit: int) -> list[str]:
    """Turn runcmd into a script with cloud-init's own `shellify` (system Python, isolated so our
    `cloudinit` package cannot shadow cloud-init's), run it with recording stand-ins for
    systemctl and the four scripts, and return what was called, in order."""
    if not Path("/usr/bin/python3").exists() or not realcheck.SYSTEM_CLOUD_INIT.exists():
        pytest.skip("/usr/bin/cloud-init not found: install the Debian package `cloud-init`")
    unshare = realcheck.require_tool("unshare", "util-linux")
    realcheck.require_root("mount a tmpfs over /usr/local/sbin in a private mount namespace")
    _spec, text = rendered("3.6", 3)[0]
    runcmd = yaml.safe_load(text)["runcmd"]
    shellified = subprocess.run(
        ["/usr/bin/python3", "-I", "-c",
         "import json, sys; from cloudinit.util import shellify; "
         "sys.stdout.write(shellify(json.load(sys.stdin)))"],
        input=json.dumps(runcmd), capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert shellified.returncode == 0, shellified.stderr
    runcmd_script = tmp_path / "runcmd"
    runcmd_script.write_text(shellified.stdout)
    log = tmp_path / "calls"
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in (*SCRIPTS, "systemctl"):
        code = install_exit if name == "etcd-install" else 0
        (stubs / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit {code}\n')
        (stubs / name).chmod(0o755)
    driver = (f'mount -t tmpfs tmpfs {unit.SBIN} && cp "{stubs}"/etcd-* {unit.SBIN}/ && '
              f'PATH="{stubs}:$PATH" sh "{runcmd_script}"; exit 0')
    done = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", driver],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.real
def test_runcmd_runs_in_order_install_prepare_then_start(tmp_path: Path) -> None:
    calls = run_runcmd(tmp_path, install_exit=0)
    names = [call.split()[0] for call in calls]
    assert names == ["etcd-install-files", "systemctl", "systemctl", "etcd-install",
                     "etcd-prepare-data", "systemctl", "systemctl"], calls
    assert calls[-1] == "systemctl start --no-block etcd.service"


@pytest.mark.real
def test_runcmd_stops_when_etcd_install_fails(tmp_path: Path) -> None:
    calls = run_runcmd(tmp_path, install_exit=1)
    assert calls[-1].startswith("etcd-install"), calls

