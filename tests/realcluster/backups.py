"""etcd-backup run on a real cluster's member as its timer runs it, for tests and benchmarks.

As root in the member's namespace, with a backup.env for an S3 server of the test's, the
member's unit (its paths moved into the member's root: the script reads `--name` from it), and
the member's work and state directories.
"""

from __future__ import annotations

from pathlib import Path

from realcluster.harness import Result
from realcluster.member import EtcdMember
from realcluster.objectstore import S3Server
from realcluster.rollout import MemberScripts

REPO = Path(__file__).resolve().parents[2]
BACKUP = REPO / "cloudinit" / "scripts" / "etcd-backup"
RESTORE = REPO / "cloudinit" / "scripts" / "etcd-restore"


def remapped_unit(member: EtcdMember) -> Path:
    """The member's unit with its paths in the member's root (the scripts read its flags)."""
    unit = member.path("/root/etcd.service")
    unit.parent.mkdir(mode=0o700, exist_ok=True)
    unit.write_text(member.remapped_unit_text())
    return unit


def state_dir(member: EtcdMember) -> Path:
    return member.path("/var/lib/etcd-backup")


def run_backup(scripts: MemberScripts, store: S3Server, prefix: str, encryption_key: str,
               *args: str, keep_count: int = 168, keep_days: int = 7,
               timeout: float = 300) -> Result:
    """etcd-backup ARGS on the member of `scripts`, with its backup.env for `store`."""
    member = scripts.member
    env_file = member.path("/etc/etcd/backup.env")
    settings = store.settings(prefix, encryption_key, keep_count, keep_days)
    env_file.write_text("".join(f"{setting}={value}\n" for setting, value in settings.items()))
    env_file.chmod(0o600)
    return scripts.run(BACKUP, *args, timeout=timeout, env={
        "ETCD_BACKUP_ENV_FILE": str(env_file),
        "ETCD_UNIT_FILE": str(remapped_unit(member)),
        "ETCD_BACKUP_WORK_DIR": str(member.path("/var/lib/etcd/backup")),
        "ETCD_BACKUP_STATE_DIR": str(state_dir(member)),
    })


def metrics(member: EtcdMember) -> dict[str, float]:
    """etcd-backup.prom of the member: each series' value by its name."""
    path = state_dir(member) / "etcd-backup.prom"
    found = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            found[series.split("{", 1)[0]] = float(value)
    return found


def restore_env(member: EtcdMember) -> dict[str, str]:
    """What etcd-restore reads on the member: its unit and its initial-cluster file."""
    return {
        "ETCD_UNIT_FILE": str(remapped_unit(member)),
        "ETCD_INITIAL_CLUSTER_FILE": str(member.path("/etc/etcd/initial-cluster.env")),
    }
