"""Two clusters, and an upgrade of the program, under the real Pulumi engine.

- A stack made by the program before its resources were named after their cluster keeps every
  key and certificate when it is upgraded: the engine follows the aliases (renames in the
  state), it creates and deletes nothing of them. Checked on the PKI, the part that needs no
  machine: an unfollowed rename there means new keys, so new certificates for every member.
- The local stack with an events cluster (`eventsCluster`) comes up with both clusters healthy,
  each reached as kube-apiserver would from the stack's outputs alone (one CA and one client
  certificate for both), with every URN unique; a second preview plans nothing. Then the events
  cluster grows 1 -> 3 by `pulumi up` while a client writes to it: the preview plans the new
  members' joins in member order, the new machines join through etcd's learners, the cluster is
  healthy with 3 voting members listed in the outputs, no acknowledged write is lost, and the
  main cluster is not touched; a preview after it plans nothing. Then `replaceMember` replaces
  etcd-events-1 (a founder) under a writer: it leaves, its VM alone is replaced, it joins again
  as a new member, nothing is lost and nothing more is planned. A shrink back to 1 is refused
  before anything changes (it would leave fewer than a majority). Then backups are turned on by
  `pulumi up` (a real S3 server on the members' bridge): the preview plans the main member's
  files step alone, the step checks the bucket and a snapshot reaches it at once, sealed, and
  nothing is left planned; destroy leaves nothing; and a second stack created from the first
  one's backup_location (restoreFrom) comes up serving what was written before the snapshot.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
import realcheck
from engine import (
    BRIDGE_HELPER,
    OutputsClient,
    Project,
    check_rollout_lost_nothing,
    continuous_writer,
    local_engine_stack,
    offline_local_config,
    planned_updates,
    scratch_dir,
    toolchain_or_skip,
)
from guests.qemu import missing_for_real_vm
from realcluster.objectstore import S3Server, rclone_binary, s3_server_binary
from realcluster.tools import Unavailable as ToolUnavailable

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[1]
STACK = "e2e"
# The last commit whose program named resources without their cluster (tests/data/urns/):
# the last one landed before the two-clusters change.
BEFORE_RENAME = "9398cbe"
TLS_TYPES = ("tls:index/privateKey:PrivateKey", "tls:index/selfSignedCert:SelfSignedCert",
             "tls:index/certRequest:CertRequest", "tls:index/locallySignedCert:LocallySignedCert")
CHANGING_OPS = {"create", "delete", "replace", "create-replacement", "delete-replaced"}


@pytest.fixture(scope="module")
def toolchain() -> Path:
    return toolchain_or_skip()


def program_at(commit: str, directory: Path) -> Path:
    """The program's files as they were at `commit` (from this checkout's git history)."""
    directory.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit],
                             capture_output=True, timeout=120)
    if archive.returncode != 0:
        pytest.skip(f"commit {commit} is not in this checkout's history (a shallow clone?): "
                    f"{archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True,
                   timeout=120)
    return directory


def without_machines(plan: dict[str, Any]) -> list[str]:
    """`--target` options for every planned resource but the VMs (and their provider)."""
    return [f"--target={step['urn']}" for step in plan["steps"]
            if not step_type(step).startswith(("command:", "pulumi:providers:command"))]


def short_name(urn: str) -> str:
    """A resource's name within its component (`e2e-pki-etcd-1-server-key` -> `etcd-1-server-key`)."""
    name = urn.rsplit("::", 1)[1]
    return name.split("-pki-", 1)[1] if "-pki-" in name else name


def step_type(step: dict[str, Any]) -> str:
    # A delete step has only the old state.
    state: dict[str, Any] = step.get("newState") or step["oldState"]
    return str(state["type"])


def tls_resources(project: Project) -> dict[str, dict[str, Any]]:
    return {resource["urn"]: resource for resource in project.resources(STACK)
            if resource["type"] in TLS_TYPES}


def test_upgrading_a_stack_made_before_the_rename_keeps_every_key_and_certificate(
        toolchain: Path) -> None:
    with scratch_dir("engine-rename-") as directory:
        old_program = program_at(BEFORE_RENAME, directory / "old-program")
        project = Project(directory / "project", toolchain, source=old_program)
        project.init_stack(STACK, offline_local_config(directory))
        plan = json.loads(project.pulumi("preview", "--stack", STACK, "--json").stdout)
        old_urns = [step["urn"] for step in plan["steps"] if step_type(step) in TLS_TYPES]
        # Two CAs (key, cert), 3 members x 2 certificates and 3 clients (key, request, cert).
        assert len(old_urns) == 2 * 2 + (3 * 2 + 3) * 3, len(old_urns)
        # Only the PKI and the components above it: nothing boots, no VM is needed.
        project.pulumi("up", "--yes", "--stack", STACK, *without_machines(plan))
        before = tls_resources(project)
        assert sorted(before) == sorted(old_urns)

        project.replace_program(REPO)
        # --show-sames: renamed resources are "same" steps, left out of the plan otherwise.
        plan = json.loads(project.pulumi("preview", "--stack", STACK, "--json",
                                         "--show-sames").stdout)
        tls_steps = [step for step in plan["steps"] if step_type(step) in TLS_TYPES]
        # Resources this version adds (the rollout deploy key) are created; every old key and
        # certificate is kept: an unfollowed rename would show as a delete and a create.
        old_names = {urn.rsplit("::", 1)[1] for urn in old_urns}
        added = {step["urn"] for step in tls_steps if step["op"] == "create"
                 and short_name(step["urn"]) not in old_names}
        changing = [(step["op"], step["urn"]) for step in tls_steps
                    if step["op"] in CHANGING_OPS and step["urn"] not in added]
        assert changing == [], changing
        assert {short_name(urn) for urn in added} <= {"rollout-deploy-key"}, added
        new_urns = [step["urn"] for step in tls_steps if step["urn"] not in added]
        assert not set(new_urns) & set(old_urns), "the new program should name resources anew"

        project.pulumi("up", "--yes", "--stack", STACK, *without_machines(plan))
        after = {urn: resource for urn, resource in tls_resources(project).items()
                 if urn not in added}
        assert sorted(after) == sorted(new_urns)
        # The same keys and certificates, now under their new names.
        assert sorted(resource["id"] for resource in after.values()) == sorted(
            resource["id"] for resource in before.values())


def check_cluster_healthy(outputs: dict[str, Any], prefix: str, namespace: str,
                          files: Path) -> OutputsClient:
    """One cluster reached from the stack's outputs: its servers, the shared CA and client."""
    client = OutputsClient({
        **outputs,
        "etcd_servers": outputs[f"{prefix}etcd_servers"],
        "members": outputs[f"{prefix}members"],
    }, namespace, files)
    health = client.wait_healthy()
    assert health.returncode == 0, health.stdout + health.stderr
    key = f"/registry/{prefix or 'main'}/check"
    assert client.apiserver("put", key, prefix or "main").returncode == 0
    got = client.apiserver("get", key, "--print-value-only")
    assert got.stdout.strip() == (prefix or "main"), got.stdout + got.stderr
    members = client.apiserver("member", "list", "-w", "json")
    names = sorted(member["name"] for member in json.loads(members.stdout)["members"])
    assert names == sorted(member["name"] for member in outputs[f"{prefix}members"])
    return client


def test_the_local_stack_with_an_events_cluster_brings_both_up_healthy_and_apart(
        toolchain: Path, local_image: Path, etcd_release: tuple[Path, str]) -> None:
    missing = missing_for_real_vm(local_image)
    if missing:
        pytest.skip(missing)
    if not BRIDGE_HELPER.exists():
        pytest.skip(f"{BRIDGE_HELPER} is missing: install the Debian package qemu-system-x86")
    try:
        # The backups at the end: checked before any VM boots.
        rclone_binary()
        s3_server_binary()
    except ToolUnavailable as missing:
        pytest.skip(str(missing))
    # One member each: two clusters of their own under software emulation on 2 cores.
    with scratch_dir("engine-events-") as directory, local_engine_stack(
            toolchain, local_image, etcd_release, directory, STACK, members=1,
            extra={"eventsCluster": True, "eventsMemberCount": 1}) as local:
        local.pulumi("up", "--yes")
        outputs = local.project.outputs(STACK)
        assert outputs["etcd_servers_overrides"] == (
            "/events#https://etcd-events-1.e2e.etcd.internal:2379")
        check_cluster_healthy(outputs, "", local.namespace, directory / "main-client")
        events = check_cluster_healthy(outputs, "events_", local.namespace,
                                       directory / "events-client")
        # The two clusters are apart: a key written to one is not in the other.
        missing_key = events.apiserver("get", "/registry/main/check", "--print-value-only")
        assert missing_key.returncode == 0 and missing_key.stdout.strip() == "", missing_key

        resources = local.project.resources(STACK)
        urns = [resource["urn"] for resource in resources]
        assert len(urns) == len(set(urns))
        # Secret outputs stay secret in the state and on the wire.
        plain = json.loads(local.pulumi("stack", "output", "--json").stdout)
        for name in ("apiserver_client_key_pem", "etcdctl_env", "events_etcdctl_env"):
            assert plain[name] == "[secret]", name
        assert "PRIVATE KEY" not in local.project.state_text()

        again = local.pulumi("preview", "--expect-no-changes", check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        grown = check_events_cluster_grows(local, events, directory / "grown-client")
        check_events_member_replaced(local, grown, directory / "replaced-client")
        check_shrink_refused(local)
        store, key = start_object_store(local, directory)
        try:
            location = check_backups_turned_on(local, store, key, outputs)

            local.pulumi("destroy", "--yes", timeout=900)
            assert not [resource for resource in local.project.resources(STACK)
                        if resource.get("custom")
                        and not resource["type"].startswith("pulumi:providers:")]
            assert not local.vms.exists() or not any(local.vms.iterdir()), sorted(local.vms.iterdir())
            check_a_stack_created_from_the_backup(local, store, key, location,
                                                  directory / "copy-client")
        finally:
            store.close()


def check_events_cluster_grows(local: Any, events: OutputsClient, files: Path) -> OutputsClient:
    """eventsMemberCount 1 -> 3 by `pulumi up`, one member joining after the other, while a
    client writes to the events cluster."""
    local.pulumi("config", "set", "eventsMemberCount", "3")
    steps = json.loads(local.pulumi("preview", "--json").stdout).get("steps", [])
    created = [short_name(step["urn"]) for step in steps
               if step["op"] == "create" and step["urn"].endswith("-join")]
    assert created == ["e2e-events-rollout-etcd-events-2-join",
                       "e2e-events-rollout-etcd-events-3-join"], created
    # Only the events cluster changes: nothing of the main cluster is planned.
    changed = [step["urn"].rsplit("::", 1)[1] for step in steps if step["op"] != "same"
               and not step["urn"].split("::")[2].endswith("pulumi:pulumi:Stack")]
    assert changed and all(name == "e2e-events" or name.startswith("e2e-events-")
                           for name in changed), changed
    with continuous_writer(events, "/registry/events/grow/") as written:
        up = local.pulumi("up", "--yes")
    shown = up.stdout
    assert shown.index("etcd-events-2-join") < shown.index("etcd-events-3-join"), shown
    assert "etcd-events-2 promoted to a voting member" in shown, shown
    outputs = local.project.outputs(STACK)
    assert [member["name"] for member in outputs["events_members"]] == [
        "etcd-events-1", "etcd-events-2", "etcd-events-3"]
    assert outputs["events_founding_members"] == ["etcd-events-1"]
    assert len(outputs["events_etcd_servers"].split(",")) == 3
    # A client from the new outputs reaches (and resolves) every member.
    grown = check_cluster_healthy(outputs, "events_", local.namespace, files)
    check_rollout_lost_nothing(grown, "/registry/events/grow/", written)
    listed = json.loads(grown.apiserver("member", "list", "-w", "json").stdout)["members"]
    assert not [member for member in listed if member.get("isLearner")], listed
    assert [member["name"] for member in outputs["members"]] == ["etcd-1"]
    again = local.pulumi("preview", "--expect-no-changes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    return grown


def check_events_member_replaced(local: Any, events: OutputsClient, files: Path) -> None:
    """replaceMember etcd-events-1 (a founder) while a client writes to the events cluster: it
    leaves (run on etcd-events-2), its VM alone is deleted and created again, and it joins
    again as a new member; nothing of the main cluster changes, and the setting left in place
    plans nothing more."""
    def member_ids() -> dict[str, str]:
        listed = json.loads(events.apiserver("member", "list", "-w", "json").stdout)["members"]
        return {member["name"]: member["ID"] for member in listed}

    before = member_ids()
    local.pulumi("config", "set", "replaceMember", "etcd-events-1")
    steps = json.loads(local.pulumi("preview", "--json").stdout).get("steps", [])
    planned = {(step["op"], short_name(step["urn"])) for step in steps if step["op"] != "same"
               and not step["urn"].split("::")[2].endswith("pulumi:pulumi:Stack")}
    assert ("create", "e2e-events-etcd-events-1-replacement-leave") in planned, planned
    assert ("create", "e2e-events-rollout-etcd-events-1-join") in planned, planned
    assert {name for op, name in planned if op == "replace"} == {
        "e2e-events-members-etcd-events-1"}, planned
    assert all(name.startswith("e2e-events-") for _, name in planned), planned
    with continuous_writer(events, "/registry/events/replace/") as written:
        up = local.pulumi("up", "--yes", timeout=1800)
    shown = up.stdout
    assert "etcd-events-1 (member" in shown and "removed" in shown, shown
    assert "etcd-events-1 promoted to a voting member" in shown, shown
    outputs = local.project.outputs(STACK)
    assert {member["name"]: member["generation"] for member in outputs["events_members"]} == {
        "etcd-events-1": 1, "etcd-events-2": 0, "etcd-events-3": 0}
    assert outputs["events_founding_members"] == []
    assert outputs["events_replaced_member"] == "etcd-events-1"
    replaced = check_cluster_healthy(outputs, "events_", local.namespace, files)
    check_rollout_lost_nothing(replaced, "/registry/events/replace/", written)
    after = member_ids()
    assert sorted(after) == sorted(before), after
    assert after["etcd-events-1"] != before["etcd-events-1"]
    assert {name: after[name] for name in after if name != "etcd-events-1"} == {
        name: before[name] for name in before if name != "etcd-events-1"}
    # Left in place, the setting replaces nothing more (and says so); removed, nothing either.
    again = local.pulumi("preview", "--expect-no-changes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "an earlier `pulumi up` replaced etcd-events-1" in again.stdout + again.stderr
    local.pulumi("config", "rm", "replaceMember")
    local.pulumi("up", "--yes")
    cleared = local.pulumi("preview", "--expect-no-changes", check=False)
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr


def check_shrink_refused(local: Any) -> None:
    """A smaller count for the running events cluster stops `pulumi up` before anything
    changes: the program reads the members the last update recorded in the stack's outputs."""
    before = local.project.resources(STACK)
    local.pulumi("config", "set", "eventsMemberCount", "1")
    refused = local.pulumi("up", "--yes", check=False)
    shown = refused.stdout + refused.stderr
    assert refused.returncode != 0, shown
    assert ("etcd-cluster:eventsMemberCount = 1: would remove etcd-events-3, then etcd-events-2 "
            "from etcd cluster e2e-events, which runs with 3 members (etcd-events-1, "
            "etcd-events-2, etcd-events-3), leaving 1, fewer than a majority (2) of its 3"
            ) in shown, shown
    assert "`pulumi config set eventsMemberCount 3`" in shown, shown
    assert local.project.resources(STACK) == before
    local.pulumi("config", "set", "eventsMemberCount", "3")
    again = local.pulumi("preview", "--expect-no-changes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr


def start_object_store(local: Any, directory: Path) -> tuple[S3Server, str]:
    """The Versity S3 Gateway on the members' bridge, over a directory of the test's; and a
    backup encryption key."""
    store = S3Server(directory / "objects", local.gateway,
                     lambda argv: ["ip", "netns", "exec", local.namespace, *argv],
                     directory / "objects.log")
    return store, secrets.token_urlsafe(48)


def set_backups(stack: Any, store: S3Server, key: str) -> None:
    stack.pulumi("config", "set", "backupBucket", store.bucket)
    stack.pulumi("config", "set", "backupEndpoint", store.endpoint)
    stack.pulumi("config", "set", "backupAccessKeyId", store.access_key_id)
    stack.pulumi("config", "set", "--secret", "backupSecretAccessKey", store.secret_access_key)
    stack.pulumi("config", "set", "--secret", "backupEncryptionKey", key)


def check_backups_turned_on(local: Any, store: S3Server, key: str,
                            outputs: dict[str, Any]) -> str:
    """Backups turned on for the running stack by `pulumi up`: the main member's files step
    alone (the events cluster is not backed up), the bucket checked, a snapshot taken at once;
    returns the backup_location."""
    set_backups(local, store, key)
    planned = planned_updates(local)
    assert planned == ["e2e-rollout-etcd-1-files"], planned
    up = local.pulumi("up", "--yes")
    shown = up.stdout
    assert "etcd-install-files: installed" in shown, shown
    assert "etcd-backup: etcd-backups/etcd/e2e/e2e at" in shown and "answers" in shown, shown
    assert "started a snapshot with the new backup settings" in shown, shown
    found = realcheck.wait_for(lambda: store.objects("etcd/e2e/e2e"), 180, interval=2)
    assert found, "no snapshot reached the bucket"
    (sealed,) = store.objects("etcd/e2e/e2e").values()
    # The main cluster's key (written by check_cluster_healthy) is in it, sealed.
    assert b"/registry/main/check" not in sealed
    after = local.project.outputs(STACK)
    assert after["backup_location"] == "s3://etcd-backups/etcd/e2e/e2e/"
    assert after["member_files"]["/etc/etcd/backup.env"] == "secret"
    assert key not in local.project.state_text()
    again = local.pulumi("preview", "--expect-no-changes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    return str(after["backup_location"])


def check_a_stack_created_from_the_backup(local: Any, store: S3Server, key: str, location: str,
                                          files: Path) -> None:
    """A new one-member stack with restoreFrom the first stack's backup_location: its member
    restores the snapshot at first boot and serves what the first cluster held."""
    copy = local.sibling("copy", eventsCluster=None, eventsMemberCount=None, restoreFrom=location)
    set_backups(copy, store, key)
    up = copy.pulumi("up", "--yes")
    # The stack's etcd 3.5.1 cannot bump the revision: the preview and the update say so.
    assert "cannot bump the restored revision (3.5.10 and later can)" in up.stdout + up.stderr, up
    outputs = copy.project.outputs("copy")
    assert outputs["restored_from"] == location
    assert outputs["backup_location"] == "s3://etcd-backups/etcd/copy/e2e/"
    client = OutputsClient(outputs, copy.namespace, files)
    health = client.wait_healthy()
    assert health.returncode == 0, health.stdout + health.stderr
    got = client.apiserver("get", "/registry/main/check", "--print-value-only")
    assert got.stdout.strip() == "main", got.stdout + got.stderr
    copy.pulumi("destroy", "--yes", timeout=900)
