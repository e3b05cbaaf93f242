"""The files this program keeps on every member, as one archive.

Pure: no Pulumi imports. A member's scripts, its backup and defragmentation timers and its
backup settings are the same on every member of a cluster. They travel as one base64-encoded
tar.gz that `etcd-install-files` installs: from the user-data at first boot, and by each
`pulumi up` that changes them (the rollout's files step), so that a running member gets new
scripts, backups turned on or off, a new schedule or new credentials without being replaced.
One archive is also the smallest way to carry them: the scripts compress better together than
one by one. Their installed copies leave out the header comment (the documentation, which is the
repository's): it comes before the first command, so the code is the same byte for byte. Both
keep 7 RSA-4096 members under DigitalOcean's 64 KiB of user-data.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
from collections.abc import Mapping
from importlib import resources

from cloudinit import unit
from model.backup import BACKUP_ENV_PATH

# Every member-side script, installed into /usr/local/sbin on every member.
SCRIPTS = ("etcd-install", "etcd-prepare-data", "etcd-wait-for-peers", "etcd-metadata-guard",
           "etcd-cluster-gate", "etcd-install-certs", "etcd-reconfigure", "etcd-member-join",
           "etcd-member-leave", "etcd-backup", "etcd-restore", "etcd-defrag", "etcd-install-files")
INSTALLER = "etcd-install-files"
UNIT_DIR = "/etc/systemd/system"
# How long one run may take: a large database's snapshot and upload, or a defragmentation of
# every member in turn.
BACKUP_TIMEOUT_SECONDS = 3600
DEFRAG_TIMEOUT_SECONDS = 3 * 3600
SECRET = "secret"


def script(name: str) -> str:
    return resources.files("cloudinit").joinpath("scripts", name).read_text()


def installed_copy(name: str) -> str:
    """The script as members get it: its header comment (the lines after `#!` up to the first
    that is not a comment) replaced by a line that says where it is documented."""
    shebang, *lines = script(name).split("\n")
    body = 0
    while body < len(lines) and lines[body].startswith("#"):
        body += 1
    pointer = f"# {name}: documented in cloudinit/scripts/{name} of the etcd-cluster program."
    return "\n".join([shebang, pointer, *lines[body:]])


def member_files(backup_env: str | None, backup_schedule: str | None,
                 defrag_schedule: str | None) -> dict[str, str]:
    """Path -> content of every file the archive carries: the scripts, each timer and its
    service when its schedule is set, and the backup settings with the backups."""
    files = {f"{unit.SBIN}/{name}": installed_copy(name) for name in SCRIPTS}
    if backup_env is not None and backup_schedule is not None:
        files[f"{UNIT_DIR}/etcd-backup.service"] = unit.maintenance_service_unit(
            "etcd-backup", "Encrypted etcd snapshot to object storage (the member that leads "
            "takes it)", BACKUP_TIMEOUT_SECONDS)
        files[f"{UNIT_DIR}/etcd-backup.timer"] = unit.timer_unit("Scheduled etcd snapshots",
                                                                 backup_schedule)
        files[BACKUP_ENV_PATH] = backup_env
    if defrag_schedule is not None:
        files[f"{UNIT_DIR}/etcd-defrag.service"] = unit.maintenance_service_unit(
            "etcd-defrag", "etcd defragmentation, one member at a time (the member that leads "
            "runs it)", DEFRAG_TIMEOUT_SECONDS)
        files[f"{UNIT_DIR}/etcd-defrag.timer"] = unit.timer_unit(
            "Scheduled etcd defragmentation", defrag_schedule)
    return files


def archive(files: Mapping[str, str]) -> str:
    """The files as etcd-install-files reads them: a tar.gz, base64 on one line. The same files
    always make the same text (sorted, no times, no owners), so an unchanged archive is no
    change to Pulumi."""
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(files):
            data = files[path].encode()
            entry = tarfile.TarInfo(path.lstrip("/"))
            entry.size = len(data)
            entry.mode = 0o600
            entry.mtime = 0
            tar.addfile(entry, io.BytesIO(data))
    return base64.b64encode(gzip.compress(packed.getvalue(), compresslevel=9, mtime=0)).decode()


def manifest(files: Mapping[str, str]) -> dict[str, str]:
    """Path -> SHA-256 of each file, the backup settings shown as `secret`: what the stack
    exports, so that `pulumi preview` names what a change of the archive changes."""
    return {path: SECRET if path == BACKUP_ENV_PATH else hashlib.sha256(content.encode()).hexdigest()
            for path, content in sorted(files.items())}
