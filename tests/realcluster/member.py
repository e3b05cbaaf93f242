"""One etcd member, installed from its user-data and started the way its systemd unit says.

From the member's cloud-init user-data (as the program rendered it):
- every `write_files` entry is written under the member's root directory with its permissions,
  and its owner (`etcd:etcd` becomes the unprivileged uid/gid the member runs as);
- the binaries `etcd-install` would put in /usr/local/bin are the real ones of the version line;
- the mount point and the data directory (0700, owned by the member's user) are made as
  `etcd-prepare-data` makes them (without a block device: the directory is on the test disk).
From the unit it wrote (/etc/systemd/system/etcd.service): ExecStartPre= and ExecStart= run with
their paths under /etc/etcd, /var/lib/etcd and /usr/local moved into the member's root and
nothing else changed, as User=/Group= (setpriv), with LimitNOFILE= (prlimit),
IOSchedulingClass=/Priority= (ionice), UMask=, NoNewPrivileges= and an empty
CapabilityBoundingSet=, in the environment systemd gives a service (PATH, USER, LOGNAME, HOME,
SHELL, and NOTIFY_SOCKET for the main process of a Type=notify unit: the member's READY=1 is
received as systemd would receive it), plus the variables of its EnvironmentFile= (read at
each start, `-` for a file that may be missing). Its ConditionPathExists= are checked at each
start as systemd checks them (`|`: at least one of those must hold): when they do not hold,
the start does nothing, as `systemctl start` of such a unit does. Working directory /. Not
emulated: Environment= (the member-side scripts' defaults apply), the filesystem sandboxing
(ProtectSystem= and friends) and Restart= (a killed member stays down, like a crashed machine).
"""

from __future__ import annotations

import contextlib
import functools
import grp
import os
import pwd
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cloud_config import write_file_contents

from realcluster import cleanup
from realcluster.netns import Host
from realcluster.tools import EtcdRelease, tools
from realcluster.unitfile import (
    SYSTEMD_PATH,
    Service,
    environment_file,
    parse_unit,
    paths_in,
    prefix_remapper,
    remap_argument,
    service_of,
)

UNIT_PATH = "/etc/systemd/system/etcd.service"
# What moves into the member's root: its certificates and keys, its data volume, its binaries
# and scripts. Every other path in the unit's command lines would name the host's own files, so
# any other path is refused.
REMAPPED_PREFIXES = ("/etc/etcd", "/var/lib/etcd", "/usr/local")
IO_CLASSES = {"realtime": "1", "best-effort": "2", "idle": "3"}
# Used when the host has no `etcd` user (Debian's etcd-server package creates one).
FALLBACK_UID = 64_123


@functools.cache
def nofile_limit(wanted: int) -> int:
    """LimitNOFILE=: `wanted`, or this host's hard limit when raising it is not permitted (a
    container without CAP_SYS_RESOURCE; systemd would fail the same way there)."""
    probe = subprocess.run([tools().prlimit, f"--nofile={wanted}:{wanted}", "true"],
                           capture_output=True, timeout=30)
    if probe.returncode == 0:
        return wanted
    return min(wanted, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


class StartError(RuntimeError):
    pass


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int


def run_as_for(user: str, group: str) -> RunAs:
    """The unit's User=/Group= if this host has them (Debian's etcd-server package makes an
    `etcd` user), else an otherwise unused unprivileged uid/gid."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return RunAs(FALLBACK_UID, FALLBACK_UID)
    if entry.pw_uid == 0:
        raise ValueError(f"unit user {user} is root on this host")
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        gid = entry.pw_gid
    return RunAs(entry.pw_uid, gid)


class NotifySocket:
    """The AF_UNIX datagram socket systemd gives a Type=notify service (NOTIFY_SOCKET)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, str]] = []
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        path.chmod(0o777)  # the unprivileged member must be able to send to it
        self._sock.settimeout(0.25)
        self._thread = threading.Thread(target=self._read, name=f"notify-{path.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode(errors="replace")
            self.messages.append((time.monotonic(), text))
            if "READY=1" in text.splitlines():
                self._ready.set()

    def reset(self) -> None:
        self._ready.clear()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class EtcdMember:
    def __init__(self, name: str, fqdn: str, host: Host, root: Path, user_data: str,
                 release: EtcdRelease, log_path: Path, notify_path: Path) -> None:
        self.name = name
        self.fqdn = fqdn
        self.host = host
        self.root = root
        self.user_data = user_data
        self.release = release
        self.log_path = log_path
        self.notify_path = notify_path
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None
        self.starts = 0
        self._token: int | None = None
        self._notify: NotifySocket | None = None
        self._notify_token: int | None = None
        self.remap = prefix_remapper(str(root), REMAPPED_PREFIXES)
        self.unit_text = write_file_contents(user_data)[UNIT_PATH]
        self.service_as_written = service_of(parse_unit(self.unit_text))
        self.service: Service = self.service_as_written.remapped(self.remap)
        self.run_as = run_as_for(self.service.user, self.service.group)
        for argv in (*self.service.exec_start_pre, self.service.exec_start):
            outside = [path for path in paths_in(argv) if not path.startswith(str(root) + "/")]
            if outside:
                raise ValueError(f"{name}: the unit names paths the harness does not remap "
                                 f"(they would be the host's own files): {outside}")

    # --- installation --------------------------------------------------------------------
    @property
    def document(self) -> dict[str, Any]:
        loaded = yaml.safe_load(self.user_data)
        assert isinstance(loaded, dict)
        return loaded

    def path(self, path: str) -> Path:
        """Where a path of the member's machine is in the test root."""
        return self.root / path.lstrip("/")

    @property
    def unit_file(self) -> Path:
        return self.path(UNIT_PATH)

    @property
    def data_dir(self) -> Path:
        (value,) = [arg.split("=", 1)[1] for arg in self.service.exec_start
                    if arg.startswith("--data-dir=")]
        return Path(value)

    def remapped_unit_text(self) -> str:
        """The unit with its Exec lines' paths moved into the member's root (as run here)."""
        lines = []
        for line in self.unit_text.splitlines():
            key, _, value = line.partition("=")
            if key in ("ExecStart", "ExecStartPre"):
                line = f"{key}=" + " ".join(remap_argument(arg, self.remap) for arg in value.split(" "))
            lines.append(line)
        return "\n".join(lines) + "\n"

    def _owner(self, owner: str) -> tuple[int, int]:
        if owner in ("root:root", "root"):
            return 0, 0
        if owner == f"{self.service.user}:{self.service.group}":
            return self.run_as.uid, self.run_as.gid
        raise ValueError(f"{self.name}: write_files owner {owner!r} unknown to the harness")

    def install(self) -> None:
        self.root.mkdir(mode=0o755)
        document = self.document
        contents = write_file_contents(self.user_data)
        for entry in document["write_files"]:
            target = self.path(entry["path"])
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            target.write_text(contents[entry["path"]])
            target.chmod(int(entry.get("permissions", "0644"), 8))
            os.chown(target, *self._owner(entry.get("owner", "root:root")))
        # The scripts, timers and backup settings: the member's own installer, as its first
        # runcmd runs it, into the member's root (the timers are systemd's: not started here).
        installer = self._runcmd("etcd-install-files")
        installed = subprocess.run(
            [tools().sh, str(self.path(installer[0])), str(self.path(installer[1]))],
            env={"PATH": os.environ["PATH"], "ETCD_FILES_ROOT": str(self.root),
                 "ETCD_SYSTEMCTL": "true", "TMPDIR": str(self.root.parent)},
            capture_output=True, text=True, timeout=120)
        if installed.returncode != 0:
            raise ValueError(f"{self.name}: etcd-install-files failed: {installed.stderr}")
        # etcd-install VERSION URL SHA256: the real binaries of the same line instead.
        install = self._runcmd("etcd-install")
        version = install[1]
        if version.rsplit(".", 1)[0] != self.release.line:
            raise ValueError(f"{self.name}: user-data installs etcd {version}, the harness runs "
                             f"{self.release.version}")
        bindir = self.path("/usr/local/bin")
        bindir.mkdir(parents=True, exist_ok=True, mode=0o755)
        for tool in ("etcd", "etcdctl", "etcdutl"):
            binary = getattr(self.release, tool)
            if binary is not None:
                (bindir / tool).symlink_to(binary)
        # etcd-prepare-data DEVICE LABEL MOUNTPOINT DATA_DIR: the mount point, then
        # `install -d -o etcd -g etcd -m 0700 DATA_DIR`.
        prepare = self._runcmd("etcd-prepare-data")
        mountpoint, data_dir = self.path(prepare[3]), self.path(prepare[4])
        mountpoint.mkdir(parents=True, exist_ok=True, mode=0o755)
        data_dir.mkdir(mode=0o700)
        data_dir.chmod(0o700)
        os.chown(data_dir, self.run_as.uid, self.run_as.gid)
        if data_dir != self.data_dir:
            raise ValueError(f"{self.name}: etcd-prepare-data makes {prepare[4]}, the unit uses "
                             f"{self.data_dir}")
        self._notify = NotifySocket(self.notify_path)
        self._notify_token = cleanup.register(f"notify socket of {self.name}", self._notify.close)

    def _runcmd(self, script: str) -> list[str]:
        for command in self.document.get("runcmd", []):
            if isinstance(command, list) and command and str(command[0]).endswith(f"/{script}"):
                return [str(part) for part in command]
        raise ValueError(f"{self.name}: user-data runs no {script}")

    # --- running ---------------------------------------------------------------------------
    @property
    def home(self) -> str:
        for user in self.document.get("users", []):
            if isinstance(user, dict) and user.get("name") == self.service_as_written.user:
                return self.remap(str(user.get("homedir", "/")))
        return "/"

    @property
    def shell(self) -> str:
        for user in self.document.get("users", []):
            if isinstance(user, dict) and user.get("name") == self.service_as_written.user:
                return str(user.get("shell", "/bin/sh"))
        return "/bin/sh"

    def environment(self, main: bool) -> dict[str, str]:
        """What systemd puts in a service's environment (and nothing from ours)."""
        env = {
            "PATH": SYSTEMD_PATH,
            "USER": self.service_as_written.user,
            "LOGNAME": self.service_as_written.user,
            "HOME": self.home,
            "SHELL": self.shell,
            **self.environment_file_variables(),
        }
        if main and self.service.type == "notify":
            env["NOTIFY_SOCKET"] = str(self.notify_path)
        return env

    def _machine_path(self, path: str) -> Path:
        """A path the unit names, in the member's root (refused outside what is remapped)."""
        moved = self.remap(path)
        if moved == path:
            raise ValueError(f"{self.name}: the unit names {path}, which the harness does not "
                             "remap (it would be the host's own file)")
        return Path(moved)

    def environment_file_variables(self) -> dict[str, str]:
        """The unit's EnvironmentFile= variables, read now (as systemd reads them at a start)."""
        variables: dict[str, str] = {}
        for value in parse_unit(self.unit_text).values("Service", "EnvironmentFile"):
            optional = value.startswith("-")
            target = self._machine_path(value.removeprefix("-"))
            if optional and not target.exists():
                continue
            variables.update(environment_file(target.read_text()))
        return variables

    def unmet_conditions(self) -> str | None:
        """Why systemd would skip starting the unit now (its ConditionPathExists=), or None."""
        plain: list[tuple[str, bool]] = []
        triggering: list[tuple[str, bool]] = []
        for value in parse_unit(self.unit_text).values("Unit", "ConditionPathExists"):
            if value.startswith("!") or value.startswith("|!"):
                raise ValueError(f"{self.name}: negated conditions are not emulated: {value}")
            trigger = value.startswith("|")
            path = value.removeprefix("|")
            (triggering if trigger else plain).append((path, self._machine_path(path).exists()))
        missing = [path for path, exists in plain if not exists]
        if missing:
            return f"ConditionPathExists={missing[0]} does not hold"
        if triggering and not any(exists for _, exists in triggering):
            return ("none of ConditionPathExists=|" +
                    ", |".join(path for path, _ in triggering) + " holds")
        return None

    def argv(self, command: Sequence[str]) -> list[str]:
        """`command` as systemd runs it for this unit, inside the member's namespace."""
        service = self.service
        t = tools()
        wrapped: list[str] = []
        if service.limit_nofile is not None:
            limit = nofile_limit(service.limit_nofile)
            wrapped += [t.prlimit, f"--nofile={limit}:{limit}"]
        if service.io_class is not None:
            wrapped += [t.ionice, "-c", IO_CLASSES[service.io_class]]
            if service.io_priority is not None:
                wrapped += ["-n", service.io_priority]
        wrapped += [t.setpriv, f"--reuid={self.run_as.uid}", f"--regid={self.run_as.gid}",
                    "--clear-groups", "--inh-caps=-all"]
        if service.capability_bounding_set_empty:
            wrapped.append("--bounding-set=-all")
        if service.no_new_privileges:
            wrapped.append("--no-new-privs")
        # Not from the unit: if this test process dies without cleaning up, so does etcd.
        wrapped += ["--pdeathsig=KILL", "--", *command]
        return self.host.argv(wrapped)

    def _log(self, message: str) -> None:
        with self.log_path.open("a") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} {message}\n")

    def start(self, pre_timeout: float = 120.0) -> None:
        """ExecStartPre= (to completion), then ExecStart= (in the background); nothing when the
        unit's conditions do not hold (as systemd skips such a start)."""
        if self.running:
            raise StartError(f"{self.name} is already running")
        assert self._notify is not None, "install() first"
        unmet = self.unmet_conditions()
        if unmet is not None:
            self._log(f"start skipped: {unmet}")
            return
        self.starts += 1
        self._notify.reset()
        for pre in self.service.exec_start_pre:
            self._log(f"ExecStartPre {' '.join(pre)}")
            with self.log_path.open("ab") as log:
                done = subprocess.run(self.argv(pre), env=self.environment(main=False),
                                      stdout=log, stderr=subprocess.STDOUT, cwd="/",
                                      umask=self.service.umask, timeout=pre_timeout)
            if done.returncode != 0:
                raise StartError(f"{self.name}: ExecStartPre exited {done.returncode}\n"
                                 f"{self.log_tail()}")
        self._log(f"ExecStart (start #{self.starts})")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(self.service.exec_start), env=self.environment(main=True),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd="/",
                umask=self.service.umask, start_new_session=True)
        self.started_at = time.monotonic()
        process = self.process
        self._token = cleanup.register(f"etcd {self.name} (pid {process.pid})",
                                       lambda: _end(process, signal.SIGKILL, 10))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def wait_ready(self, timeout: float) -> bool:
        """READY=1 received on the notify socket (what makes systemd call the start done)."""
        assert self._notify is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._notify.wait_ready(0.2):
                return True
            if not self.running:
                return False
        return self._notify.ready

    @property
    def ready_messages(self) -> list[str]:
        return [text for _, text in self._notify.messages] if self._notify else []

    def kill(self) -> None:
        """SIGKILL, like a crashed machine: no graceful shutdown."""
        self._end(signal.SIGKILL, 30)

    def stop(self, timeout: float = 90.0) -> None:
        """`systemctl stop`: SIGTERM, SIGKILL after TimeoutStopSec (90 s by default)."""
        self._end(signal.SIGTERM, timeout)

    def send_stop(self) -> None:
        """The SIGTERM of `systemctl stop`, without waiting (see `stop`)."""
        if self.running:
            assert self.process is not None
            self._log("sending SIGTERM")
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)

    def _end(self, signum: int, timeout: float) -> None:
        if self.process is None:
            return
        if self.process.poll() is not None:
            if self._token is not None:
                cleanup.forget(self._token)
                self._token = None
            return
        self._log(f"sending {signal.Signals(signum).name}")
        _end(self.process, signum, timeout)
        if self._token is not None:
            cleanup.forget(self._token)
            self._token = None
        self._log(f"exited with {self.process.returncode}")

    def close(self) -> None:
        self.kill()
        if self._notify_token is not None:
            cleanup.run(self._notify_token)
            self._notify_token = None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"({self.log_path} missing)"
        return f"--- last lines of {self.name}'s log ({self.log_path}):\n" + "\n".join(
            text.splitlines()[-lines:])


def _end(process: subprocess.Popen[bytes], signum: int, timeout: float) -> None:
    """End a process this harness started, by its PID only."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signum)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
