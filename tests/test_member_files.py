"""The member files' archive (cloudinit/member_files.py) and `etcd-install-files`, run for real.

The installer is the real script under /bin/sh, installing into a directory of the test's
(ETCD_FILES_ROOT) with a `systemctl` that records its calls (the nspawn test runs it under real
systemd at first boot): what it installs, with which modes; that a second run changes nothing;
that a changed schedule restarts its timer and backups turned off remove their timer, service
and settings; that anything but the files it manages is refused before anything is installed;
and that with backups it checks their settings against the bucket and starts a snapshot when
they changed.
"""

from __future__ import annotations

import base64
import gzip
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import realcheck
from cloud_config import archive_contents

from cloudinit import member_files, unit
from model.backup import BACKUP_ENV_PATH

INSTALLER = realcheck.SCRIPTS_DIR / "etcd-install-files"
BACKUP_ENV = "ETCD_BACKUP_ENDPOINT='https://fra1.digitaloceanspaces.com'\n"
BACKUP_TIMER = "/etc/systemd/system/etcd-backup.timer"
DEFRAG_TIMER = "/etc/systemd/system/etcd-defrag.timer"


def files(backups: bool = True, backup_schedule: str = "hourly",
          defrag: str | None = "*-*-* 04:30:00") -> dict[str, str]:
    return member_files.member_files(BACKUP_ENV if backups else None, backup_schedule, defrag)


# --- the archive --------------------------------------------------------------------------------

def test_the_same_files_always_make_the_same_archive_text() -> None:
    assert member_files.archive(files()) == member_files.archive(files())
    assert member_files.archive(files()) != member_files.archive(files(backup_schedule="daily"))
    assert "\n" not in member_files.archive(files())


def test_the_archive_holds_every_script_the_timers_and_the_backup_settings() -> None:
    contents = archive_contents(member_files.archive(files()))
    assert sorted(contents) == sorted([
        *(f"{unit.SBIN}/{name}" for name in member_files.SCRIPTS),
        "/etc/systemd/system/etcd-backup.service", BACKUP_TIMER,
        "/etc/systemd/system/etcd-defrag.service", DEFRAG_TIMER, BACKUP_ENV_PATH])
    assert contents[BACKUP_ENV_PATH] == BACKUP_ENV
    assert "OnCalendar=hourly UTC" in contents[BACKUP_TIMER]
    assert "OnCalendar=*-*-* 04:30:00 UTC" in contents[DEFRAG_TIMER]
    without = archive_contents(member_files.archive(files(backups=False, defrag=None)))
    assert sorted(without) == sorted(f"{unit.SBIN}/{name}" for name in member_files.SCRIPTS)


@pytest.mark.parametrize("name", member_files.SCRIPTS)
def test_an_installed_script_is_the_repositorys_without_its_header_comment(name: str) -> None:
    original = (realcheck.SCRIPTS_DIR / name).read_text().split("\n")
    installed = member_files.installed_copy(name).split("\n")
    assert installed[0] == original[0] == "#!/bin/sh"
    assert installed[1] == f"# {name}: documented in cloudinit/scripts/{name} of the etcd-cluster program."
    header = next(index for index, line in enumerate(original[1:], 1) if not line.startswith("#"))
    # Only comments went: every line from the first command on is the same.
    assert installed[2:] == original[header:]


def test_the_manifest_names_every_file_by_its_digest_and_never_shows_the_settings() -> None:
    manifest = member_files.manifest(files())
    assert manifest[BACKUP_ENV_PATH] == member_files.SECRET
    assert all(len(digest) == 64 for path, digest in manifest.items() if path != BACKUP_ENV_PATH)


# --- etcd-install-files -------------------------------------------------------------------------

@dataclass
class Member:
    """A member's root directory and the calls its systemctl received."""

    root: Path
    calls_log: Path
    backup_log: Path

    @property
    def calls(self) -> list[str]:
        return self.calls_log.read_text().splitlines() if self.calls_log.exists() else []

    @property
    def backup_calls(self) -> list[str]:
        return self.backup_log.read_text().splitlines() if self.backup_log.exists() else []

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def install(self, archive: str, *args: str, backup_check_exit: int = 0,
                path: str | None = None) -> subprocess.CompletedProcess[str]:
        self.calls_log.unlink(missing_ok=True)
        self.backup_log.unlink(missing_ok=True)
        stubs = self.root.parent / "stubs"
        stubs.mkdir(exist_ok=True)
        for name, log, code in (("systemctl", self.calls_log, 0),
                                ("etcd-backup", self.backup_log, backup_check_exit)):
            (stubs / name).write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexit {code}\n')
            (stubs / name).chmod(0o755)
        env = {"PATH": path or os.environ["PATH"], "ETCD_FILES_ROOT": str(self.root),
               "ETCD_SYSTEMCTL": str(stubs / "systemctl"),
               "ETCD_BACKUP": str(stubs / "etcd-backup"), "TMPDIR": str(self.root.parent)}
        return subprocess.run(["sh", str(INSTALLER), *args, "-"], input=archive, env=env,
                              capture_output=True, text=True, timeout=60)


@pytest.fixture
def member(tmp_path: Path) -> Member:
    if os.geteuid() != 0:
        pytest.skip("etcd-install-files gives the files to root: run as root")
    root = tmp_path / "root"
    root.mkdir()
    return Member(root, tmp_path / "systemctl.log", tmp_path / "etcd-backup.log")


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_it_installs_every_file_root_owned_with_its_mode_and_starts_the_timers(member: Member) -> None:
    wanted = files()
    done = ok(member.install(member_files.archive(wanted)))
    for path, content in wanted.items():
        installed = member.path(path)
        assert installed.read_text() == content, path
        stat = installed.stat()
        mode = 0o755 if path.startswith(unit.SBIN) else 0o600 if path == BACKUP_ENV_PATH else 0o644
        assert (stat.st_mode & 0o7777, stat.st_uid, stat.st_gid) == (mode, 0, 0), path
    assert member.calls == ["daemon-reload", "enable etcd-backup.timer", "restart etcd-backup.timer",
                            "enable etcd-defrag.timer", "restart etcd-defrag.timer"]
    assert "etcd-install-files: installed" in done.stdout
    # The files' content is never printed (the backup settings hold credentials).
    assert BACKUP_ENV.strip() not in done.stdout + done.stderr


def test_a_second_run_changes_nothing_and_restarts_nothing(member: Member) -> None:
    archive = member_files.archive(files())
    ok(member.install(archive))
    again = ok(member.install(archive))
    assert again.stdout.strip() == (f"etcd-install-files: nothing to change: the "
                                    f"{len(files())} files are installed")
    assert member.calls == ["enable etcd-backup.timer", "start etcd-backup.timer",
                            "enable etcd-defrag.timer", "start etcd-defrag.timer"]


def test_a_new_schedule_replaces_its_timer_and_restarts_it_alone(member: Member) -> None:
    ok(member.install(member_files.archive(files())))
    done = ok(member.install(member_files.archive(files(backup_schedule="*:0/15"))))
    assert done.stdout.strip() == f"etcd-install-files: installed {BACKUP_TIMER.lstrip('/')}"
    assert "OnCalendar=*:0/15 UTC" in member.path(BACKUP_TIMER).read_text()
    assert member.calls == ["daemon-reload", "enable etcd-backup.timer", "restart etcd-backup.timer",
                            "enable etcd-defrag.timer", "start etcd-defrag.timer"]


def test_backups_turned_off_stop_their_timer_and_remove_it_the_service_and_the_settings(
        member: Member) -> None:
    ok(member.install(member_files.archive(files())))
    done = ok(member.install(member_files.archive(files(backups=False))))
    for path in (BACKUP_TIMER, "/etc/systemd/system/etcd-backup.service", BACKUP_ENV_PATH):
        assert not member.path(path).exists(), path
    assert member.path(DEFRAG_TIMER).exists()
    assert member.calls[0] == "disable --now etcd-backup.timer"
    assert "daemon-reload" in member.calls
    assert "removed" in done.stdout and "etc/etcd/backup.env" in done.stdout


def tar_archive(entries: list[tarfile.TarInfo], contents: dict[str, bytes]) -> str:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        for entry in entries:
            data = contents.get(entry.name)
            tar.addfile(entry, io.BytesIO(data) if data is not None else None)
    return base64.b64encode(gzip.compress(packed.getvalue())).decode()


def file_entry(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    entry = tarfile.TarInfo(name)
    entry.size = len(data)
    return entry, data


@pytest.mark.parametrize("name", ["etc/passwd", "usr/local/sbin/other-tool",
                                  "etc/systemd/system/sshd.service", "usr/local/sbin/etcd-x/y"])
def test_a_file_it_does_not_manage_is_refused_and_nothing_is_installed(
        member: Member, name: str) -> None:
    script, data = file_entry("usr/local/sbin/etcd-backup", b"#!/bin/sh\n")
    odd, odd_data = file_entry(name, b"x\n")
    refused = member.install(tar_archive([script, odd], {script.name: data, odd.name: odd_data}))
    assert refused.returncode == 1
    assert (f"the archive holds {name}, which etcd-install-files does not install; nothing was "
            "installed") in refused.stderr
    assert not any(member.root.rglob("*"))


def test_a_link_in_the_archive_is_refused_before_anything_is_unpacked(member: Member) -> None:
    link = tarfile.TarInfo("usr")
    link.type = tarfile.SYMTYPE
    link.linkname = "/"
    script, data = file_entry("usr/local/sbin/etcd-backup", b"#!/bin/sh\n")
    refused = member.install(tar_archive([link, script], {script.name: data}))
    assert refused.returncode == 1
    assert "the archive holds an entry that is not a plain file" in refused.stderr
    assert not any(member.root.rglob("*"))


def test_what_is_not_a_base64_archive_is_refused(member: Member) -> None:
    refused = member.install("this is not base64 !")
    assert refused.returncode == 1 and "standard input is not base64" in refused.stderr
    notar = member.install(base64.b64encode(b"plain text").decode())
    assert notar.returncode == 1 and "the archive does not open" in notar.stderr


def test_with_check_backups_the_settings_are_checked_and_a_change_starts_a_snapshot(
        member: Member) -> None:
    archive = member_files.archive(files())
    first = ok(member.install(archive, "--check-backups"))
    assert member.backup_calls == ["--check"]
    assert "start --no-block etcd-backup.service" in member.calls
    assert "started a snapshot with the new backup settings" in first.stdout
    # Unchanged settings: checked again, no snapshot started.
    ok(member.install(archive, "--check-backups"))
    assert member.backup_calls == ["--check"]
    assert "start --no-block etcd-backup.service" not in member.calls


def test_backup_settings_that_do_not_reach_the_bucket_fail_the_step_naming_the_settings(
        member: Member) -> None:
    failed = member.install(member_files.archive(files()), "--check-backups", backup_check_exit=1)
    assert failed.returncode == 1
    assert "the backup settings do not reach the bucket (above); fix backupEndpoint" in failed.stderr
    assert "start --no-block etcd-backup.service" not in member.calls


def test_without_check_backups_the_bucket_is_not_asked(member: Member) -> None:
    # The user-data's run at first boot: a storage outage must not stop etcd from starting.
    ok(member.install(member_files.archive(files())))
    assert member.backup_calls == []


def test_backups_without_rclone_and_apt_fail_naming_rclone(member: Member, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("base64", "tar", "gzip", "find", "sed", "sort", "cmp", "cp", "chmod", "chown",
                 "mv", "mkdir", "rm", "grep", "dirname", "basename", "wc", "tr", "head", "mktemp",
                 "cat", "tail", "sh"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    failed = member.install(member_files.archive(files()), path=str(bin_dir))
    assert failed.returncode == 1
    assert "rclone is missing and apt could not install it" in failed.stderr
