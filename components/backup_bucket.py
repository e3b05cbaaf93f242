"""The backups' DigitalOcean Spaces bucket, when the stack creates it (`backupCreateBucket`).

The bucket is private and versioned: a member whose credentials leak can overwrite or delete
snapshots, but the versions it replaced stay for `backupKeepDays` (a lifecycle rule expires
them after, so retention still frees space). `pulumi destroy` leaves it in place
(`retain_on_delete`): the backups are what a lost or destroyed cluster is created again from.
Without credentials in the settings, the members get a Spaces key of their own that may read
and write this bucket and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from components.naming import ChildNames
from model.backup import BackupSpec

# Incomplete multipart uploads (a member that died mid-upload) cost storage until aborted.
ABORT_INCOMPLETE_UPLOADS_DAYS = 1


@dataclass(frozen=True)
class BackupCredentials:
    access_key_id: pulumi.Output[str]
    # Secret.
    secret_access_key: pulumi.Output[str]


class BackupBucket(pulumi.ComponentResource):
    credentials: BackupCredentials

    def __init__(self, name: str, backup: BackupSpec, region: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:BackupBucket", name, None, opts)
        names = ChildNames(self, name, keep_unprefixed=False)
        bucket = do.SpacesBucket(
            names.name("bucket"),
            name=backup.bucket,
            region=region,
            acl="private",
            versioning=do.SpacesBucketVersioningArgs(enabled=True),
            lifecycle_rules=[do.SpacesBucketLifecycleRuleArgs(
                enabled=True,
                abort_incomplete_multipart_upload_days=ABORT_INCOMPLETE_UPLOADS_DAYS,
                noncurrent_version_expiration=(
                    do.SpacesBucketLifecycleRuleNoncurrentVersionExpirationArgs(
                        days=backup.keep_days)),
            )],
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        if backup.access_key_id is not None:
            self.credentials = given_credentials(backup)
        else:
            key = do.SpacesKey(
                names.name("key"),
                name=names.name("members"),
                grants=[do.SpacesKeyGrantArgs(bucket=bucket.name, permission="readwrite")],
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.credentials = BackupCredentials(key.access_key,
                                                 pulumi.Output.secret(key.secret_key))
        self.bucket_name = bucket.name
        self.register_outputs({"bucket": bucket.name})


def given_credentials(backup: BackupSpec) -> BackupCredentials:
    """The credentials the settings give (a bucket the stack does not create)."""
    assert backup.access_key_id is not None and backup.secret_access_key is not None, \
        "settings require credentials without backupCreateBucket"
    return BackupCredentials(pulumi.Output.from_input(backup.access_key_id),
                             pulumi.Output.secret(backup.secret_access_key))
