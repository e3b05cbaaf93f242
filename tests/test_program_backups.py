"""Backups, restores and maintenance in the program, under mocks.

- every member's user-data, and every files step of the rollout, carries the member files'
  archive (the backup timer and settings with the credentials) as a secret; the files steps
  check the settings against the bucket; no plain input or output holds a credential or the key;
- the stack exports where the snapshots go (what another stack's restoreFrom takes) and what
  the files step installs; an events cluster gets the defragmentation timer and no backups;
- a new cluster with restoreFrom: every founder restores the newest snapshot taken before the
  cluster's peer CA was issued (the same instant for all), and the stack records it; a running
  cluster is never restored, keeps its record, and a changed restoreFrom is warned about;
- DigitalOcean with backupCreateBucket: a private, versioned Spaces bucket `pulumi destroy`
  leaves in place, and a Spaces key that may use that bucket alone, whose keys the members get.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import pytest
import yaml
from cloud_config import installed_files, write_file_contents
from program import (
    SELF_SIGNED_CERT,
    SPACES_BUCKET,
    SPACES_KEY,
    ProgramError,
    ProgramRun,
    Secret,
    run_program,
)
from test_program_local import QEMU

from cloudinit import member_files
from cloudinit.userdata import MEMBER_FILES_PATH
from model.backup import BACKUP_ENV_PATH, RESTORE_SNAPSHOT_PATH, snapshot_time
from model.settings import SettingsError

REMOTE = "command:remote:Command"
ENCRYPTION_KEY = secrets.token_urlsafe(48)
SECRET_ACCESS_KEY = f"secret-{secrets.token_hex(16)}"
BACKUPS = {
    **QEMU,
    "backupBucket": "etcd-backups",
    "backupEndpoint": "http://192.168.56.1:7070",
    "backupAccessKeyId": "test-access-key",
    "backupSecretAccessKey": Secret(SECRET_ACCESS_KEY),
    "backupEncryptionKey": Secret(ENCRYPTION_KEY),
    "backupSchedule": "*:0/15",
}
MEMBERS = ("etcd-1", "etcd-2", "etcd-3")


@pytest.fixture(scope="module")
def backed_up(program: Any) -> ProgramRun:
    run: ProgramRun = program(BACKUPS, "local")
    return run


def archive_of(user_data: str) -> str:
    return write_file_contents(user_data)[MEMBER_FILES_PATH]


def test_every_member_boots_with_the_backup_timer_and_settings_in_its_secret_user_data(
        backed_up: ProgramRun) -> None:
    for name in MEMBERS:
        installed = installed_files(backed_up.user_data[name])
        settings = installed[BACKUP_ENV_PATH]
        assert "ETCD_BACKUP_ENDPOINT=http://192.168.56.1:7070" in settings
        assert "ETCD_BACKUP_PREFIX=etcd/local/local" in settings
        assert f"ETCD_BACKUP_SECRET_ACCESS_KEY={SECRET_ACCESS_KEY}" in settings
        assert f"ETCD_BACKUP_ENCRYPTION_KEY={ENCRYPTION_KEY}" in settings
        assert "OnCalendar=*:0/15 UTC" in installed["/etc/systemd/system/etcd-backup.timer"]
        machine = backed_up.get("command:local:Command", name)
        assert "stdin" in machine.secret_inputs


def test_every_files_step_sends_the_archive_as_a_secret_and_checks_the_backups(
        backed_up: ProgramRun) -> None:
    for name in MEMBERS:
        step = backed_up.get(REMOTE, f"{name}-files")
        assert "stdin" in step.secret_inputs
        assert step.inputs["stdin"] == archive_of(backed_up.user_data[name])
        assert step.inputs["create"].endswith(
            "sudo -n /usr/local/sbin/etcd-install-files --check-backups -")


def test_no_plain_input_or_output_holds_a_credential_or_the_key(backed_up: ProgramRun) -> None:
    for registration in backed_up.registrations:
        plain = {key: value for key, value in registration.inputs.items()
                 if key not in registration.secret_inputs}
        text = json.dumps(plain)
        assert SECRET_ACCESS_KEY not in text and ENCRYPTION_KEY not in text, registration.name
        # The archive is the settings packed: it travels as a secret wherever it goes.
        for key, value in plain.items():
            assert not (isinstance(value, str) and value.startswith("H4sI")), (registration.name, key)
    for name, output in backed_up.outputs.items():
        if not output.secret:
            text = json.dumps(output.value)
            assert SECRET_ACCESS_KEY not in text and ENCRYPTION_KEY not in text, name


def test_the_stack_exports_where_the_snapshots_go_and_what_every_member_gets(
        backed_up: ProgramRun) -> None:
    assert backed_up.output("backup_location") == "s3://etcd-backups/etcd/local/local/"
    assert backed_up.output("backup_schedule") == "*:0/15"
    manifest = backed_up.output("member_files")
    assert manifest[BACKUP_ENV_PATH] == member_files.SECRET
    assert {"/etc/systemd/system/etcd-backup.timer", "/etc/systemd/system/etcd-defrag.timer",
            "/usr/local/sbin/etcd-backup"} <= set(manifest)
    assert backed_up.output("new_members_only")["packages"] == []  # the local image has rclone
    assert backed_up.output("restored_from") is None


def test_without_backups_the_files_step_asks_no_bucket_and_no_location_is_exported(
        program: Any) -> None:
    run: ProgramRun = program(QEMU, "local")
    assert not run.get(REMOTE, "etcd-1-files").inputs["create"].count("--check-backups")
    assert run.output("backup_location") is None
    assert BACKUP_ENV_PATH not in installed_files(run.user_data["etcd-1"])


def test_an_events_cluster_gets_defragmentation_and_no_backups(program: Any) -> None:
    run: ProgramRun = program({**BACKUPS, "eventsCluster": True, "eventsMemberCount": 1}, "local")
    events = installed_files(run.user_data["etcd-events-1"])
    assert "/etc/systemd/system/etcd-defrag.timer" in events
    assert BACKUP_ENV_PATH not in events and "/etc/systemd/system/etcd-backup.timer" not in events
    assert "events_backup_location" not in run.outputs
    step = run.cluster("local-events").get(REMOTE, "etcd-events-1-files")
    assert "--check-backups" not in step.inputs["create"]


def test_a_secret_stored_in_plain_text_is_refused_before_anything_is_created(program: Any) -> None:
    with pytest.raises(ProgramError) as failure:
        program({**BACKUPS, "backupEncryptionKey": ENCRYPTION_KEY}, "local")
    assert isinstance(failure.value.error, SettingsError)
    (problem,) = failure.value.error.problems
    assert problem.startswith("etcd-cluster:backupEncryptionKey = [secret]: is stored in plain text")
    assert ENCRYPTION_KEY not in str(failure.value.error)
    assert [reg for reg in failure.value.registrations if reg.custom] == []


# --- restoreFrom --------------------------------------------------------------------------------

def restore_commands(user_data: str) -> list[list[str]]:
    return [command for command in yaml.safe_load(user_data)["runcmd"]
            if command[0].endswith(("/etcd-backup", "/etcd-restore")) or
            command == ["rm", "-f", RESTORE_SNAPSHOT_PATH]]


def test_a_new_cluster_restores_the_newest_snapshot_taken_before_its_peer_ca_on_every_founder(
        program: Any) -> None:
    run: ProgramRun = program({**BACKUPS, "restoreFrom": "latest"}, "local")
    issued = run.get(SELF_SIGNED_CERT, "peer-ca-cert").outputs["validityStartTime"]  # type: ignore[index]
    for name in MEMBERS:
        fetch, restore, remove = restore_commands(run.user_data[name])
        assert fetch == ["/usr/local/sbin/etcd-backup", "--fetch", "latest", "--taken-before",
                         snapshot_time(issued), "--output", RESTORE_SNAPSHOT_PATH]
        assert restore[-2:] == ["--bump-revision", "1000000000"]
        assert remove == ["rm", "-f", RESTORE_SNAPSHOT_PATH]
    assert run.output("restored_from") == "latest"


RUNNING = {"members": [{"name": name} for name in MEMBERS], "founding_members": list(MEMBERS)}


def test_a_running_cluster_is_never_restored_and_keeps_its_record(
        caplog: pytest.LogCaptureFixture) -> None:
    recorded = {**RUNNING, "restored_from": "latest"}
    with caplog.at_level(logging.WARNING, logger="pulumi-program"):
        run = run_program({**BACKUPS, "restoreFrom": "latest"}, "local", recorded_outputs=recorded)
    assert all(restore_commands(run.user_data[name]) == [] for name in MEMBERS)
    assert run.output("restored_from") == "latest"
    assert not [record for record in caplog.records if "restoreFrom" in record.getMessage()]


def test_restore_from_set_on_a_running_cluster_changes_nothing_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pulumi-program"):
        run = run_program({**BACKUPS, "restoreFrom": "latest"}, "local", recorded_outputs=RUNNING)
    assert all(restore_commands(run.user_data[name]) == [] for name in MEMBERS)
    assert run.output("restored_from") is None
    (message,) = [record.getMessage() for record in caplog.records
                  if "restoreFrom" in record.getMessage()]
    assert "restoreFrom latest changes nothing: the cluster runs" in message


def test_a_member_that_joins_a_restored_cluster_restores_nothing(program: Any) -> None:
    recorded = {**RUNNING, "restored_from": "latest"}
    run = run_program({**BACKUPS, "restoreFrom": "latest", "memberCount": 5}, "local",
                      recorded_outputs=recorded)
    assert restore_commands(run.user_data["etcd-4"]) == []


# --- DigitalOcean -------------------------------------------------------------------------------

SPACES = {
    "rolloutVia": "private",
    "region": "fra1",
    "backupBucket": "acme-etcd-backups",
    "backupEncryptionKey": Secret(ENCRYPTION_KEY),
    "backupCreateBucket": True,
    "backupKeepDays": 10,
}


def test_digitalocean_creates_a_private_versioned_bucket_destroy_keeps_and_a_key_for_it_alone(
        program: Any) -> None:
    run: ProgramRun = program(SPACES)
    (bucket,) = run.of_type(SPACES_BUCKET)
    assert bucket.inputs["name"] == "acme-etcd-backups" and bucket.inputs["region"] == "fra1"
    assert bucket.inputs["acl"] == "private"
    assert bucket.inputs["versioning"] == {"enabled": True}
    (rule,) = bucket.inputs["lifecycleRules"]
    assert rule["enabled"] and rule["noncurrentVersionExpiration"] == {"days": 10}
    assert rule["abortIncompleteMultipartUploadDays"] == 1
    assert bucket.retain_on_delete and not bucket.protect
    (key,) = run.of_type(SPACES_KEY)
    assert key.inputs["grants"] == [{"bucket": "acme-etcd-backups", "permission": "readwrite"}]
    settings = installed_files(run.user_data["etcd-1"])[BACKUP_ENV_PATH]
    assert key.outputs is not None
    assert f"ETCD_BACKUP_ACCESS_KEY_ID={key.outputs['accessKey']}" in settings
    assert f"ETCD_BACKUP_SECRET_ACCESS_KEY={key.outputs['secretKey']}" in settings
    assert "ETCD_BACKUP_ENDPOINT=https://fra1.digitaloceanspaces.com" in settings
    assert "rclone" in run.output("new_members_only")["packages"]


def test_a_bucket_of_ones_own_with_ones_own_keys_creates_nothing(program: Any) -> None:
    run: ProgramRun = program({**SPACES, "backupCreateBucket": False,
                               "backupAccessKeyId": "DO00KEY",
                               "backupSecretAccessKey": Secret(SECRET_ACCESS_KEY)})
    assert run.of_type(SPACES_BUCKET) == [] and run.of_type(SPACES_KEY) == []
    settings = installed_files(run.user_data["etcd-1"])[BACKUP_ENV_PATH]
    assert "ETCD_BACKUP_ACCESS_KEY_ID=DO00KEY" in settings
