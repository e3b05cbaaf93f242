"""The backup, restore and maintenance settings: what a stack gets, and what is refused.

Every bad value is refused before anything is created, naming the setting and the fix; a
credential or key is never shown in a message, and one stored in plain text is refused.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from program import config_value

from model.backup import DEFAULT_BUMP_REVISION, S3Location, parse_restore_from
from model.cluster_spec import events_cluster, main_cluster
from model.settings import SPECS, Settings, SettingsError, load_settings

REQUIRED = {"dnsZone": "example.com", "cloudflareZoneId": "0123456789abcdef0123456789abcdef"}
KEY = secrets.token_urlsafe(48)
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BACKUPS = {
    "backupBucket": "acme-etcd-backups",
    "backupAccessKeyId": "DO00EXAMPLEKEYID",
    "backupSecretAccessKey": SECRET_ACCESS_KEY,
    "backupEncryptionKey": KEY,
}
# How `pulumi config set --secret` stores them.
SECRETS = frozenset({"backupSecretAccessKey", "backupEncryptionKey"})


def load(stack: str = "prod", secret: frozenset[str] = SECRETS, **overrides: Any) -> Settings:
    return load_settings({**REQUIRED, **BACKUPS, **overrides}, stack, secret)


def problems(secret: frozenset[str] = SECRETS, **overrides: Any) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(secret=secret, **overrides)
    return caught.value.problems


def only_problem(**overrides: Any) -> str:
    found = problems(**overrides)
    assert len(found) == 1, found
    return found[0]


def test_without_a_bucket_there_are_no_backups_and_defragmentation_runs_daily() -> None:
    settings = load_settings(REQUIRED, "prod")
    assert settings.backup is None and settings.restore is None
    assert settings.maintenance.defrag_schedule == "*-*-* 04:30:00"


def test_a_bucket_turns_backups_on_with_hourly_snapshots_to_spaces_in_the_stacks_region() -> None:
    backup = load(region="fra1").backup
    assert backup is not None
    assert backup.endpoint == "https://fra1.digitaloceanspaces.com"
    assert backup.region == "us-east-1"
    assert backup.schedule == "hourly"
    assert (backup.keep_count, backup.keep_days) == (72, 14)
    # Each cluster under a prefix of its own, per stack by default.
    assert backup.location("prod").url == "s3://acme-etcd-backups/etcd/prod/prod/"


def test_the_main_cluster_is_backed_up_and_the_events_cluster_is_not() -> None:
    settings = load(eventsCluster=True)
    assert main_cluster(settings).backup == settings.backup
    events = events_cluster(settings)
    assert events is not None and events.backup is None and events.restore is None
    assert events.maintenance == settings.maintenance


def test_a_prefix_and_an_endpoint_of_ones_own_are_taken() -> None:
    backup = load(backupPrefix="/clusters/eu/", backupEndpoint="https://s3.eu-west-1.amazonaws.com",
                  backupRegion="eu-west-1").backup
    assert backup is not None
    assert backup.prefix == "clusters/eu"
    assert (backup.endpoint, backup.region) == ("https://s3.eu-west-1.amazonaws.com", "eu-west-1")


@pytest.mark.parametrize("setting", ["backupSchedule", "backupKeepCount", "restoreFrom",
                                     "backupEndpoint"])
def test_a_backup_setting_without_a_bucket_is_refused(setting: str) -> None:
    value = {"backupSchedule": "daily", "backupKeepCount": 3, "restoreFrom": "latest",
             "backupEndpoint": "https://x.example.com"}[setting]
    with pytest.raises(SettingsError) as caught:
        load_settings({**REQUIRED, setting: value}, "prod")
    (problem,) = caught.value.problems
    assert problem.startswith(f"etcd-cluster:{setting} = ")
    assert "configures backups, which are off without backupBucket" in problem


@pytest.mark.parametrize("bucket", ["ab", "Acme", "acme_backups", "-acme", "acme..x", "10.0.0.1",
                                    "a" * 64])
def test_a_bucket_name_s3_refuses_is_refused(bucket: str) -> None:
    assert "must be an S3 bucket name" in only_problem(backupBucket=bucket)


@pytest.mark.parametrize("endpoint", ["fra1.digitaloceanspaces.com", "ftp://x.example.com",
                                      "https://x.example.com/bucket", "https://user@x.example.com",
                                      "https://x.example.com?a=b"])
def test_an_endpoint_that_is_no_s3_url_is_refused(endpoint: str) -> None:
    assert "must be the URL of an S3 endpoint with no path" in only_problem(backupEndpoint=endpoint)


def test_plain_http_is_refused_but_to_a_private_address() -> None:
    assert "uses plain http" in only_problem(backupEndpoint="http://s3.example.com")
    backup = load(backupEndpoint="http://192.168.56.1:7070").backup
    assert backup is not None and backup.endpoint == "http://192.168.56.1:7070"


@pytest.mark.parametrize("prefix", ["a//b", "a/../b", "a b", "ä"])
def test_a_prefix_that_is_no_key_prefix_is_refused(prefix: str) -> None:
    assert "must be a key prefix" in only_problem(backupPrefix=prefix)


@pytest.mark.parametrize("setting", ["backupAccessKeyId", "backupSecretAccessKey",
                                     "backupEncryptionKey"])
def test_missing_credentials_or_key_are_refused_naming_the_command(setting: str) -> None:
    problem = only_problem(**{setting: None})
    assert problem.startswith(f"etcd-cluster:{setting} = None: is required with backupBucket")
    assert "pulumi config set --secret" in problem or "openssl rand" in problem


@pytest.mark.parametrize("setting", ["backupSecretAccessKey", "backupEncryptionKey"])
def test_a_secret_stored_in_plain_text_is_refused_and_never_shown(setting: str) -> None:
    problem = only_problem(secret=SECRETS - {setting})
    assert problem.startswith(f"etcd-cluster:{setting} = [secret]: is stored in plain text")
    assert f"pulumi config rm {setting}" in problem
    assert BACKUPS[setting] not in problem


def test_no_message_shows_a_credential_or_the_key() -> None:
    found = problems(backupEncryptionKey="short key", backupSecretAccessKey="with space")
    assert len(found) == 3, found
    assert all("short key" not in problem and "with space" not in problem for problem in found)
    assert any("is 9 characters; use at least 32" in problem for problem in found)


def test_a_short_encryption_key_is_refused_with_how_to_make_one() -> None:
    problem = only_problem(backupEncryptionKey="k" * 31)
    assert "use at least 32" in problem and "openssl rand -base64 48" in problem


@pytest.mark.parametrize(("schedule", "message"), [
    ("*:0/1", "runs as often as every 60 s; it may run at most once every 5 minutes (e.g. "
              "*:0/15, hourly or 0/6:00)"),
    ("minutely", "runs as often as every 60 s"),
    ("0 3 * * *", "Accepted: hourly, daily"),
    ("@daily", "Accepted: hourly, daily"),
    ("25:00", "hour 25 is out of range 0-23"),
])
def test_a_backup_schedule_too_often_or_not_systemds_is_refused(schedule: str, message: str) -> None:
    problem = only_problem(backupSchedule=schedule)
    assert problem.startswith(f"etcd-cluster:backupSchedule = {schedule!r}: ")
    assert message in problem, problem


@pytest.mark.parametrize("schedule", ["*:0/5", "*:0/30", "daily", "Mon..Fri 02:00", "0,12:15"])
def test_a_backup_schedule_of_five_minutes_or_more_is_taken(schedule: str) -> None:
    backup = load(backupSchedule=schedule).backup
    assert backup is not None and backup.schedule == schedule


@pytest.mark.parametrize(("setting", "value"), [("backupKeepCount", 0), ("backupKeepDays", 0),
                                                ("backupKeepCount", -1)])
def test_retention_of_zero_is_refused_it_would_delete_every_snapshot(setting: str, value: int) -> None:
    assert only_problem(**{setting: value}).startswith(
        f"etcd-cluster:{setting} = {value}: must be between 1 and")


def test_creating_the_bucket_is_digitaloceans_and_needs_no_credentials() -> None:
    backup = load(backupCreateBucket=True, backupAccessKeyId=None,
                  backupSecretAccessKey=None).backup
    assert backup is not None and backup.create_bucket
    assert backup.access_key_id is None and backup.secret_access_key is None
    local = problems(backend="qemu", backupCreateBucket=True)
    assert any(problem.startswith("etcd-cluster:backupCreateBucket = True: creates a "
                                  "DigitalOcean Spaces bucket; qemu members") for problem in local)


def test_a_created_bucket_has_no_dots_and_takes_both_keys_or_neither() -> None:
    assert "Spaces bucket names have no dots" in only_problem(backupCreateBucket=True,
                                                              backupBucket="acme.backups")
    assert "go together" in only_problem(backupCreateBucket=True, backupAccessKeyId=None)


def test_defragmentation_can_be_turned_off_or_scheduled_at_most_hourly() -> None:
    assert load_settings({**REQUIRED, "defragSchedule": "off"}, "prod").maintenance.defrag_schedule is None
    assert load_settings({**REQUIRED, "defragSchedule": "Sun 03:00"},
                         "prod").maintenance.defrag_schedule == "Sun 03:00"
    with pytest.raises(SettingsError) as caught:
        load_settings({**REQUIRED, "defragSchedule": "*:0/30"}, "prod")
    assert "at most once every 60 minutes" in caught.value.problems[0]


# --- restoreFrom ------------------------------------------------------------------------------

def test_restore_from_latest_takes_the_clusters_own_newest_snapshot_with_the_revision_bumped() -> None:
    restore = load(restoreFrom="latest").restore
    assert restore is not None
    assert (restore.source, restore.snapshot) == (None, None)
    assert restore.bump_revision == DEFAULT_BUMP_REVISION and restore.bump_skipped is None


@pytest.mark.parametrize(("text", "location", "snapshot"), [
    ("s3://other-bucket/etcd/prod/prod/", S3Location("other-bucket", "etcd/prod/prod"), None),
    ("s3://b/p/20261206T194357Z-etcd-2-r1234.db", S3Location("b", "p"),
     "20261206T194357Z-etcd-2-r1234.db"),
])
def test_restore_from_another_location_the_newest_or_a_named_snapshot(
        text: str, location: S3Location, snapshot: str | None) -> None:
    assert parse_restore_from(text) == (location, snapshot)
    restore = load(restoreFrom=text).restore
    assert restore is not None and (restore.source, restore.snapshot) == (location, snapshot)


@pytest.mark.parametrize(("text", "message"), [
    ("newest", "must be `latest`"),
    ("s3://bucket-only/", "must name a bucket and a prefix"),
    ("s3://b/p/backup.tar", "which is not a snapshot of this program"),
])
def test_a_restore_source_that_is_none_of_the_forms_is_refused(text: str, message: str) -> None:
    assert message in only_problem(restoreFrom=text)


def test_a_release_that_cannot_bump_the_revision_restores_as_it_was_with_a_warning() -> None:
    restore = load(restoreFrom="latest", etcdVersion="3.5.1", etcdSha256="a" * 64).restore
    assert restore is not None and restore.bump_revision == 0
    assert restore.bump_skipped is not None and "3.5.10 and later" in restore.bump_skipped
    # Asked for explicitly, it is refused.
    problem = only_problem(restoreFrom="latest", etcdVersion="3.5.1", etcdSha256="a" * 64,
                           restoreBumpRevision=5000)
    assert problem.startswith("etcd-cluster:restoreBumpRevision = 5000: etcd 3.5.1 cannot bump")
    assert "pulumi config set restoreBumpRevision 0" in problem


@pytest.mark.parametrize("version", ["3.4.27", "3.5.10", "3.6.14", "3.7.1"])
def test_releases_from_3_4_27_and_3_5_10_bump_the_revision(version: str) -> None:
    restore = load(restoreFrom="latest", etcdVersion=version, etcdSha256="a" * 64).restore
    assert restore is not None and restore.bump_revision == DEFAULT_BUMP_REVISION


def test_the_defaults_the_engine_hands_the_program_are_not_settings_of_ones_own() -> None:
    # `pulumi up` adds Pulumi.yaml's default of every setting the stack leaves out, as text.
    as_the_engine_sends = {spec.key: config_value("" if spec.default is None else spec.default)
                           for spec in SPECS}
    settings = load_settings({**as_the_engine_sends, **REQUIRED}, "prod")
    assert settings.backup is None and settings.restore is None
    restore = load_settings({**as_the_engine_sends, **REQUIRED, **BACKUPS, "restoreFrom": "latest",
                             "etcdVersion": "3.5.1", "etcdSha256": "a" * 64}, "prod", SECRETS).restore
    # restoreBumpRevision at its default: skipped with a warning on a release that cannot.
    assert restore is not None and restore.bump_revision == 0 and restore.bump_skipped
