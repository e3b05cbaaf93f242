"""Backups and restores in a member's user-data: what its first boot installs and runs.

- the member files' archive is installed first (the scripts the rest of runcmd runs), from a
  file on tmpfs, root's alone (it holds the backup credentials);
- with backups the packages include rclone;
- a cluster created from a snapshot: every founding member fetches the same snapshot (the newest
  taken before the cluster was created), restores it as the member and drops the copy, after
  its data volume is ready and before etcd is enabled and started; a member that joins later
  restores nothing (it syncs);
- 7 RSA-4096 members with backups and a restore stay under DigitalOcean's 64 KiB;
- cloud-init's own validator accepts it, and systemd's own checker the timers and services.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
import realcheck
import yaml
from cloud_config import installed_files, write_file_contents
from test_userdata import specs

from cloudinit import member_files, unit
from cloudinit.userdata import MEMBER_FILES_PATH, MemberUserData, check_size, render_user_data
from model.backup import (
    BACKUP_ENV_PATH,
    RESTORE_SNAPSHOT_PATH,
    BackupSpec,
    RestoreSpec,
    backup_environment,
    restore_commands,
)

BACKUP = BackupSpec(bucket="acme-etcd", endpoint="https://fra1.digitaloceanspaces.com",
                    region="us-east-1", prefix="etcd/dev", access_key_id="DO00KEYID",
                    secret_access_key="s3cr3t/with+chars=", encryption_key="k" * 64,
                    schedule="hourly", keep_count=72, keep_days=14)
LATEST = RestoreSpec(text="latest", source=None, snapshot=None, bump_revision=1_000_000_000)
CREATED_AT = "2026-12-06T19:43:57Z"
SBIN = unit.SBIN


def with_backups(spec: MemberUserData, restore: RestoreSpec | None = LATEST,
                 founders: tuple[str, ...] = ()) -> MemberUserData:
    environment = backup_environment(BACKUP, spec.topology.cluster_name, "DO00KEYID",
                                     "s3cr3t/with+chars=")
    archive = member_files.archive(member_files.member_files(environment, "hourly",
                                                             "*-*-* 04:30:00"))
    commands = () if restore is None else tuple(tuple(command) for command in restore_commands(
        restore, f"{SBIN}/etcd-backup", f"{SBIN}/etcd-restore", CREATED_AT))
    return dataclasses.replace(spec, member_files_archive=archive, backups=True,
                               restore_commands=commands, founders=founders)


def runcmd(spec: MemberUserData) -> list[list[str]]:
    commands: list[list[str]] = yaml.safe_load(render_user_data(spec))["runcmd"]
    return commands


def test_the_archive_is_installed_first_from_a_file_only_root_reads() -> None:
    spec = with_backups(specs("3.6", 3)[0])
    assert runcmd(spec)[1] == [f"{SBIN}/etcd-install-files", MEMBER_FILES_PATH]
    entry = next(entry for entry in yaml.safe_load(render_user_data(spec))["write_files"]
                 if entry["path"] == MEMBER_FILES_PATH)
    assert MEMBER_FILES_PATH.startswith("/run/") and entry["permissions"] == "0600"
    installed = installed_files(render_user_data(spec))
    assert installed[BACKUP_ENV_PATH] == backup_environment(BACKUP, "dev", "DO00KEYID",
                                                            "s3cr3t/with+chars=")
    assert "OnCalendar=hourly UTC" in installed["/etc/systemd/system/etcd-backup.timer"]


@pytest.mark.parametrize("secret", ["plain", "a$b`c'd\"e;f|g&h*", "'quoted'", "$(reboot)"])
def test_etcd_backup_reads_back_exactly_the_credentials_and_key_it_was_given(
        secret: str, tmp_path: Path) -> None:
    # etcd-backup sources the file with sh: no value may be read differently or run.
    spec = dataclasses.replace(BACKUP, encryption_key=secret * 8)
    env_file = tmp_path / "backup.env"
    env_file.write_text(backup_environment(spec, "main", secret, secret))
    shown = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; set +a; printf "%s\\n" "$ETCD_BACKUP_ACCESS_KEY_ID" '
         '"$ETCD_BACKUP_SECRET_ACCESS_KEY" "$ETCD_BACKUP_ENCRYPTION_KEY" "$ETCD_BACKUP_PREFIX"',
         "sh", str(env_file)], capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split("\n")[:4] == [secret, secret, secret * 8, "etcd/dev/main"]


def test_with_backups_the_members_install_rclone() -> None:
    spec = specs("3.6", 3)[0]
    assert "rclone" in yaml.safe_load(render_user_data(with_backups(spec)))["packages"]
    assert "rclone" not in yaml.safe_load(render_user_data(spec))["packages"]


def test_every_founder_restores_the_same_snapshot_after_its_volume_and_before_etcd_starts() -> None:
    for spec in specs("3.6", 3):
        commands = runcmd(with_backups(spec))
        names = [command[0].rsplit("/", 1)[-1] for command in commands]
        prepare = names.index("etcd-prepare-data")
        enable = commands.index(["systemctl", "enable", "etcd.service"])
        assert names[prepare + 1:enable] == ["etcd-backup", "etcd-restore", "rm"]
        fetch, restore, remove = commands[prepare + 1:enable]
        # The newest snapshot taken before the cluster was created: the same on every member.
        assert fetch == [f"{SBIN}/etcd-backup", "--fetch", "latest", "--taken-before",
                         "20261206T194357Z", "--output", RESTORE_SNAPSHOT_PATH]
        assert restore == [f"{SBIN}/etcd-restore", "--snapshot", RESTORE_SNAPSHOT_PATH,
                           "--bump-revision", "1000000000"]
        assert remove == ["rm", "-f", RESTORE_SNAPSHOT_PATH]


def test_a_named_snapshot_from_another_location_is_fetched_as_named() -> None:
    from model.backup import parse_restore_from
    source, snapshot = parse_restore_from("s3://old/etcd/prod/prod/20261201T000000Z-etcd-1-r9.db")
    restore = RestoreSpec(text="...", source=source, snapshot=snapshot, bump_revision=0)
    fetch, restore_command, _ = restore_commands(restore, "etcd-backup", "etcd-restore", CREATED_AT)
    assert fetch == ["etcd-backup", "--fetch", "20261201T000000Z-etcd-1-r9.db", "--from",
                     "old/etcd/prod/prod", "--output", RESTORE_SNAPSHOT_PATH]
    assert restore_command == ["etcd-restore", "--snapshot", RESTORE_SNAPSHOT_PATH]


def test_a_member_that_joins_restores_nothing() -> None:
    founders = ("etcd-1", "etcd-2", "etcd-3")
    joiner = specs("3.6", 5)[4]
    names = [command[0].rsplit("/", 1)[-1] for command in runcmd(with_backups(joiner,
                                                                               founders=founders))]
    assert "etcd-restore" not in names and "etcd-backup" not in names


@pytest.mark.parametrize("line", realcheck.LINES)
def test_seven_rsa_4096_members_with_backups_and_a_restore_stay_under_64_kib(line: str) -> None:
    for spec in specs(line, 7, "rsa-4096"):
        text = render_user_data(with_backups(spec))
        assert len(text.encode()) < 64 * 1024, f"{spec.member.name}: {len(text.encode())} bytes"
        check_size(text, spec.member.fqdn, "digitalocean")


@pytest.mark.real
def test_cloud_init_schema_accepts_a_member_with_backups_and_a_restore(tmp_path: Path) -> None:
    path = tmp_path / "user-data.yaml"
    path.write_text(render_user_data(with_backups(specs("3.6", 3)[0])))
    result = realcheck.cloud_init_schema(path)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Valid cloud-config" in output, output


@pytest.mark.real
def test_systemd_analyze_verify_accepts_the_timers_and_services(tmp_path: Path) -> None:
    analyze = realcheck.require_tool("systemd-analyze", "systemd")
    unshare = realcheck.require_tool("unshare", "util-linux")
    realcheck.require_root("mount tmpfs over /usr/local/sbin in a private mount namespace")
    installed = installed_files(render_user_data(with_backups(specs("3.6", 3)[0])))
    units = tmp_path / "units"
    units.mkdir()
    names = ["etcd-backup.service", "etcd-backup.timer", "etcd-defrag.service", "etcd-defrag.timer"]
    for name in names:
        (units / name).write_text(installed[f"/etc/systemd/system/{name}"])
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("etcd-backup", "etcd-defrag"):
        shutil.copy(realcheck.SCRIPTS_DIR / name, stubs / name)
    script = ('set -e; mount -t tmpfs tmpfs /usr/local/sbin; cp "$1"/* /usr/local/sbin/; '
              'chmod 755 /usr/local/sbin/*; shift; exec "$@"')
    result = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(stubs),
         analyze, "verify", "--man=no", *(str(units / name) for name in names)],
        capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    if "Failed to connect to bus" in output or "System has not been booted with systemd" in output:
        pytest.skip(f"systemd-analyze verify cannot run without systemd as PID 1 here: {output}")
    assert result.returncode == 0, output
    ours = [line for line in output.splitlines() if "etcd" in line]
    assert not ours, "systemd-analyze verify complains about the units:\n" + "\n".join(ours)


def test_the_user_data_writes_no_script_outside_the_archive_but_its_installer() -> None:
    written = write_file_contents(render_user_data(with_backups(specs("3.6", 3)[0])))
    assert [path for path in written if path.startswith(SBIN)] == [f"{SBIN}/etcd-install-files"]
