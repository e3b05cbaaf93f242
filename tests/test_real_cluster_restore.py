"""Disaster recovery as README.md documents it, run as written on a real rebuilt cluster.

A cluster made from the program's output takes writes; a snapshot is saved the README's way (the
operator's `etcdctl_env` sourced, `snapshot save` from one endpoint); more writes follow; then
every member is lost. A fresh cluster with the same names (the same program output, new
machines: empty data directories made as `etcd-prepare-data` makes them) gets the README's
`<!-- restore-procedure -->` block, extracted from README.md and run unchanged as root on each
member (3.4: `etcdutl` -> `etcdctl`, as the README says), with UNIT and INITIAL_CLUSTER_FILE
pointing at that member's unit and initial-cluster file (paths moved into the member's root),
SNAPSHOT, and ETCD_USER/ETCD_GROUP the uid/gid the members run as. Then the members start from
their units and the snapshot's data must be back.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from program import ProgramRun
from realcluster.harness import Cluster
from realcluster.pytest_support import MATRIX, new_cluster, report
from realcluster.readme import restore_procedure
from realcluster.unitfile import SYSTEMD_PATH

pytestmark = pytest.mark.real

BEFORE, AFTER = "/registry/dr/before/", "/registry/dr/after/"


@pytest.mark.parametrize("line_members", MATRIX)
def test_readme_restore_procedure_brings_a_lost_cluster_back_from_a_snapshot(
        line_members: tuple[str, int], request: pytest.FixtureRequest,
        program: Callable[..., ProgramRun], tmp_path: Path) -> None:
    lost = new_cluster(request, program, line_members)
    for number in range(25):
        assert lost.put(f"{BEFORE}{number:03d}", f"v{number}").ok
    snapshot = save_snapshot_as_readme_says(lost, tmp_path / "backup.db")
    for number in range(5):
        assert lost.put(f"{AFTER}{number:03d}", "written after the snapshot").ok
    lost.close()  # every member lost

    rebuilt = new_cluster(request, program, line_members, start=False)
    script = restore_procedure(rebuilt.release.line)
    for member in rebuilt.members.values():
        copy = member.path("/root/backup.db")
        copy.parent.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(snapshot, copy)
        unit = member.path("/root/etcd.service")
        unit.write_text(member.remapped_unit_text())
        env = {
            "PATH": f"{member.path('/usr/local/bin')}:{SYSTEMD_PATH}",
            "HOME": str(member.path("/root")),
            "UNIT": str(unit),
            "INITIAL_CLUSTER_FILE": str(member.path("/etc/etcd/initial-cluster.env")),
            "SNAPSHOT": str(copy),
            "ETCD_USER": str(member.run_as.uid),
            "ETCD_GROUP": str(member.run_as.gid),
        }
        result = rebuilt.in_client([rebuilt.tools.sh, "-c", script], host=member.host, env=env,
                                   timeout=120)
        assert result.ok, f"restore on {member.name} failed:\n{result}"
        data_dir = member.data_dir
        stat = data_dir.stat()
        assert (stat.st_mode & 0o777, stat.st_uid, stat.st_gid) == (
            0o700, member.run_as.uid, member.run_as.gid), data_dir
        assert (data_dir / "member").is_dir()
        kept = [path for path in data_dir.parent.iterdir()
                if re.fullmatch(rf"{data_dir.name}\.before-restore\.\d{{14}}", path.name)]
        assert len(kept) == 1, f"the old data directory was not kept: {list(data_dir.parent.iterdir())}"

    started = time.monotonic()
    rebuilt.start()
    rebuilt.wait_ready(timeout=300)
    rebuilt.wait_healthy(timeout=300)
    report(request, "restored cluster: seconds from start to healthy",
           round(time.monotonic() - started, 2))
    assert rebuilt.get_prefix(BEFORE) == {f"{BEFORE}{number:03d}": f"v{number}"
                                          for number in range(25)}
    assert rebuilt.get_prefix(AFTER) == {}, "writes after the snapshot came back"
    listed = rebuilt.member_ids()
    assert sorted(listed.values()) == sorted(rebuilt.names)
    assert rebuilt.put("/registry/dr/after-restore", "ok").ok
    for name in rebuilt.names:
        assert rebuilt.get_prefix("/registry/dr/after-restore", [name])


def save_snapshot_as_readme_says(cluster: Cluster, keep_as: Path) -> Path:
    """README "Backups": operator env sourced, `snapshot save` from one endpoint, then status.

    The endpoint is given as ETCDCTL_ENDPOINTS: README's `etcdctl --endpoints=...` form is
    refused by etcdctl when the operator environment (which exports ETCDCTL_ENDPOINTS) is
    loaded (test_real_cluster.py::test_readme_snapshot_save_line_works_with_the_operator_env).
    """
    first = cluster.endpoints()[0]
    status = ("etcdutl snapshot status backup.db -w table" if cluster.release.etcdutl
              else "etcdctl snapshot status backup.db -w table")  # README: etcd 3.4
    script = f". ./etcd.sh && ETCDCTL_ENDPOINTS={first} etcdctl snapshot save backup.db && {status}"
    result = cluster.in_client([cluster.tools.sh, "-c", script], env=cluster.operator_env(),
                               cwd=str(cluster.work))
    assert result.ok, f"snapshot save failed:\n{result}"
    shutil.copyfile(cluster.work / "backup.db", keep_as)
    return keep_as
