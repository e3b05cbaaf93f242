"""The program under the real Pulumi engine (tests/engine.py): what users run, run for real.

- Bad settings fail a real `pulumi preview` with the program's message, and nothing is created.
- The policy pack runs under the engine (`pulumi preview --policy-pack policy`) and stops a
  preview that breaks a policy with that policy's message.
- The local stack's whole life, as an unprivileged user (as the README has users run it):
  `pulumi up` boots 3 QEMU members that form a healthy cluster, reached through the stack's own
  outputs with real etcdctl; `pulumi preview --expect-no-changes` and a second `pulumi up` plan
  nothing; the example consumer reads the outputs through a real StackReference; renewed
  certificates reach the running members by `pulumi up` over SSH, one member after another,
  while a client keeps writing (no acknowledged write lost, the new serials served); so does a
  flag change made with the rolling upgrade 3.5.33 -> 3.6.14 (both built from Go modules;
  planned as the members' configuration steps alone, each member restarted once, in member
  order), and a downgrade is refused with the script's message; `pulumi destroy` leaves no VM,
  disk, seed, probe cache, directory or process. (This is the whole-machine check of the QEMU
  backend's create and delete scripts too, as the engine runs them: each VM's directory, seed
  and user-data are its owner's alone.) The stack founds its
  cluster on 3.5.33 so that one rollout covers the minor upgrade: each rollout of 3 TCG VMs
  costs minutes of CI, and the patch upgrade and the flag change alone are run on real etcd by
  tests/test_reconfigure_script.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
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

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[1]
STACK = "e2e"
# The lifecycle stack founds its cluster on FOUNDING and is upgraded to UPGRADE.
FOUNDING, UPGRADE = "3.5.33", "3.6.14"
# What a preview or up of the local stack registers besides the stack itself.
LOCAL_TYPES = {"tls:index/privateKey:PrivateKey", "tls:index/selfSignedCert:SelfSignedCert",
               "tls:index/certRequest:CertRequest", "tls:index/locallySignedCert:LocallySignedCert",
               "command:local:Command"}


@pytest.fixture(scope="module")
def toolchain() -> Path:
    return toolchain_or_skip()


def custom_resources(project: Project) -> list[dict[str, Any]]:
    return [resource for resource in project.resources(STACK)
            if resource.get("custom") and not resource["type"].startswith("pulumi:providers:")]


def test_a_bad_setting_fails_the_real_preview_naming_the_setting_and_the_fix_and_creates_nothing(
        toolchain: Path) -> None:
    with scratch_dir("engine-bad-") as directory:
        project = Project(directory, toolchain)
        project.init_stack(STACK, offline_local_config(directory, memberCount=4,
                                                       electionTimeoutMs=400))
        preview = project.pulumi("preview", "--stack", STACK, check=False)
        assert preview.returncode != 0, preview.stdout
        shown = preview.stdout + preview.stderr
        assert "invalid stack configuration (2 problem(s))" in shown, shown
        assert "etcd-cluster:memberCount = 4" in shown and "Use 3 (tolerates 1 failure)" in shown, shown
        assert "etcd-cluster:electionTimeoutMs = 400" in shown, shown
        # The program stops before registering anything: the engine has nothing to create, and
        # no Python traceback buries the message.
        assert "Traceback" not in shown, shown
        up = project.pulumi("up", "--yes", "--skip-preview", "--stack", STACK, check=False)
        assert up.returncode != 0, up.stdout
        assert custom_resources(project) == []


def test_the_policy_pack_runs_under_the_engine_and_a_preview_that_breaks_a_policy_fails(
        toolchain: Path) -> None:
    policy = REPO / "policy"
    if not (policy / ".venv" / "bin" / "python").exists():
        pytest.skip("policy/.venv is missing: python3 -m venv policy/.venv && "
                    "policy/.venv/bin/pip install -r policy/requirements.txt (.ci/run does)")
    with scratch_dir("engine-policy-") as directory:
        project = Project(directory, toolchain)
        project.init_stack(STACK, offline_local_config(directory))
        passing = project.pulumi("preview", "--stack", STACK, "--policy-pack", str(policy),
                                 "--policy-pack-config", str(policy / "config.json"),
                                 "--json", check=False)
        assert passing.returncode == 0, passing.stdout + passing.stderr
        # Private keys are secrets: never in the plan a pull request shows.
        assert "PRIVATE KEY" not in passing.stdout + passing.stderr
        plan = json.loads(passing.stdout)
        planned = {step["newState"]["type"] for step in plan["steps"] if step["op"] == "create"}
        assert planned >= LOCAL_TYPES, planned
        assert not plan.get("diagnostics") or all(
            item.get("severity") != "error" for item in plan["diagnostics"]), plan["diagnostics"]

        for setting, value in (("certValidityHours", "1440"), ("certEarlyRenewalHours", "168")):
            project.pulumi("config", "set", setting, value, "--stack", STACK)
        failing = project.pulumi("preview", "--stack", STACK, "--policy-pack", str(policy),
                                 "--policy-pack-config", str(policy / "config.json"), check=False)
        shown = failing.stdout + failing.stderr
        assert failing.returncode != 0, shown
        assert "etcd-certificate-minimum-validity" in shown, shown
        assert "valid for 1440 hours (60 days), less than minimumCertValidityDays = 90 days" in shown, shown


def test_the_local_stack_comes_up_healthy_plans_no_changes_feeds_a_consumer_and_destroy_leaves_nothing(
        toolchain: Path, local_image: Path, etcd_release: tuple[Path, str]) -> None:
    missing = missing_for_real_vm(local_image)
    if missing:
        pytest.skip(missing)
    if not BRIDGE_HELPER.exists():
        pytest.skip(f"{BRIDGE_HELPER} is missing: install the Debian package qemu-system-x86")
    served = etcd_release[0]
    shas = {version: served_release(version, served) for version in (FOUNDING, UPGRADE)}
    with scratch_dir("engine-local-") as directory, local_engine_stack(
            toolchain, local_image, (served, shas[FOUNDING]), directory, STACK,
            extra={"etcdVersion": FOUNDING}) as local:
        up = local.pulumi("up", "--yes")
        assert "created" in up.stdout, up.stdout
        outputs = local.project.outputs(STACK)
        check_healthy_through_outputs(outputs, local.namespace, directory / "client")
        check_vm_files_private(local.vms)

        # Nothing this program does may plan a change on a stack that is up to date.
        again = local.pulumi("preview", "--expect-no-changes", check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        second = local.pulumi("up", "--yes", "--expect-no-changes", check=False)
        assert second.returncode == 0, second.stdout + second.stderr

        # Secrets are encrypted in the state: no private key in clear.
        state = local.project.state_text()
        assert "PRIVATE KEY" not in state
        assert outputs["apiserver_client_key_pem"].strip() not in state

        check_consumer(local.project, directory / "consumer")
        check_certificate_renewal(local, outputs, directory / "renewal")
        check_upgrade_with_flag_change(local, outputs, shas, directory / "upgrade")
        check_downgrade_refused(local, outputs, shas, directory / "downgrade")

        destroy = local.pulumi("destroy", "--yes", timeout=900)
        assert "deleted" in destroy.stdout, destroy.stdout
        assert custom_resources(local.project) == []
        # The last VM's delete also removes the accelerator probe's cache and the emptied
        # directory: nothing of the VMs is left.
        assert not local.vms.exists(), sorted(local.vms.iterdir())
        assert not _qemu_processes_under(directory), "a QEMU process outlived destroy"


def check_vm_files_private(vms: Path) -> None:
    """Each VM's directory is its owner's alone, and so are its seed and user-data (they carry
    the member's private keys)."""
    # (The accelerator probe keeps its cache in a hidden directory beside them.)
    states = sorted(path for path in vms.iterdir()
                    if path.is_dir() and not path.name.startswith("."))
    assert len(states) == 3, states
    for state in states:
        assert state.stat().st_mode & 0o777 == 0o700, state
        for private in (state / "seed", state / "seed" / "user-data"):
            assert private.stat().st_mode & 0o077 == 0, private


def served_serials(client: OutputsClient, outputs: dict[str, Any]) -> dict[str, str]:
    """The serial of the server certificate each member's client port serves now."""
    files = client.files
    serials = {}
    for member in outputs["members"]:
        shown = client.run(["sh", "-c", 'openssl s_client -connect "$1:2379" -CAfile "$2" '
                            '-cert "$3" -key "$4" </dev/null 2>/dev/null | openssl x509 -noout -serial',
                            "sh", member["fqdn"], str(files / "ca.pem"), str(files / "client.pem"),
                            str(files / "client-key.pem")])
        assert shown.returncode == 0 and shown.stdout.startswith("serial="), shown
        serials[member["name"]] = shown.stdout.strip()
    return serials


def check_certificate_renewal(local: Any, outputs: dict[str, Any], files: Path) -> None:
    """Renewed certificates reach every running member by `pulumi up`, one member at a time,
    while a client keeps writing: every acknowledged write survives, the cluster stays healthy,
    and the members serve the new certificates."""
    client = OutputsClient(outputs, local.namespace, files)
    before = served_serials(client, outputs)
    # A changed validity re-issues every member certificate (as renewal inside
    # certEarlyRenewalHours does).
    local.pulumi("config", "set", "certValidityHours", "8000")
    with continuous_writer(client, "/renewal/") as written:
        up = local.pulumi("up", "--yes")
    check_in_member_order(up.stdout, "certificates")
    after = served_serials(client, outputs)
    assert all(after[name] != before[name] for name in before), (before, after)
    check_rollout_lost_nothing(client, "/renewal/", written)
    again = local.pulumi("preview", "--expect-no-changes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr


def start_times(client: OutputsClient, outputs: dict[str, Any]) -> dict[str, float]:
    """When each member's etcd process started (its metrics' process_start_time_seconds)."""
    started = {}
    for member in outputs["members"]:
        metrics = client.run(["curl", "--silent", "--fail", "--max-time", "10",
                              f"http://{member['fqdn']}:2381/metrics"])
        assert metrics.returncode == 0, metrics
        line = next(line for line in metrics.stdout.splitlines()
                    if line.startswith("process_start_time_seconds "))
        started[member["name"]] = float(line.split()[1])
    return started


def check_upgrade_with_flag_change(local: Any, outputs: dict[str, Any], shas: dict[str, str],
                                   files: Path) -> None:
    """A rolling upgrade 3.5.33 -> 3.6.14 (the 3.5 patch etcd's guide requires before 3.6) made
    with a tuning change: planned as exactly the members' configuration steps, it restarts each
    member once, in member order, while a client keeps writing and loses nothing, and every
    member then runs 3.6.14."""
    client = OutputsClient(outputs, local.namespace, files)
    assert running_versions(client) == [FOUNDING] * 3
    before = start_times(client, outputs)
    local.pulumi("config", "set", "snapshotCount", "20000")
    local.pulumi("config", "set", "etcdVersion", UPGRADE)
    local.pulumi("config", "set", "etcdSha256", shas[UPGRADE])
    planned = planned_updates(local)
    assert [name.partition("-rollout-")[2] for name in planned] == [
        f"{member}-configuration" for member in ("etcd-1", "etcd-2", "etcd-3")], planned
    with continuous_writer(client, "/upgrade/") as written:
        up = local.pulumi("up", "--yes")
    check_in_member_order(up.stdout, "configuration")
    check_rollout_lost_nothing(client, "/upgrade/", written)
    assert running_versions(client) == [UPGRADE] * 3
    after = start_times(client, outputs)
    assert all(after[name] > before[name] for name in before), (before, after)
    order = sorted(after, key=after.__getitem__)
    assert order == ["etcd-1", "etcd-2", "etcd-3"], f"restarted out of member order: {after}"
    again = local.pulumi("preview", "--expect-no-changes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr


def check_downgrade_refused(local: Any, outputs: dict[str, Any], shas: dict[str, str],
                            files: Path) -> None:
    """A downgrade is refused at the first member with the message, the cluster keeps running
    3.6.14, and back on it the failed `pulumi up` left nothing to do."""
    client = OutputsClient(outputs, local.namespace, files)
    local.pulumi("config", "set", "etcdVersion", FOUNDING)
    local.pulumi("config", "set", "etcdSha256", shas[FOUNDING])
    refused = local.pulumi("up", "--yes", check=False)
    shown = refused.stdout + refused.stderr
    assert refused.returncode != 0, shown
    assert f"etcdVersion {FOUNDING} is older than etcd {UPGRADE}" in shown, shown
    assert "downgrades are refused" in shown, shown
    assert running_versions(client) == [UPGRADE] * 3
    local.pulumi("config", "set", "etcdVersion", UPGRADE)
    local.pulumi("config", "set", "etcdSha256", shas[UPGRADE])
    again = local.pulumi("preview", "--expect-no-changes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr


def served_release(version: str, served: Path) -> str:
    """Puts the built etcd `version` tarball where the members download from; its SHA-256."""
    tarball, sha256 = realcheck.built_release_tarball(version)
    shutil.copy2(tarball, served / tarball.name)
    return sha256


def running_versions(client: OutputsClient) -> list[str]:
    status = client.apiserver("endpoint", "status", "--cluster", "-w", "json")
    assert status.returncode == 0, status.stdout + status.stderr
    return sorted(entry["Status"]["version"] for entry in json.loads(status.stdout))


def check_in_member_order(shown: str, step: str) -> None:
    order = [shown.index(f"{member}-{step}") for member in ("etcd-1", "etcd-2", "etcd-3")]
    assert order == sorted(order), f"the members' {step} steps ran out of order"


def check_healthy_through_outputs(outputs: dict[str, Any], namespace: str, files: Path) -> None:
    """kube-apiserver's view (etcd_servers, CA, client cert) and an operator's (etcdctl_env)."""
    client = OutputsClient(outputs, namespace, files)
    health = client.wait_healthy()
    assert health.returncode == 0, health.stdout + health.stderr
    members = json.loads(client.apiserver("member", "list", "-w", "json").stdout)["members"]
    assert sorted(member["name"] for member in members) == ["etcd-1", "etcd-2", "etcd-3"]
    put = client.apiserver("put", "/registry/engine/e2e", "real-engine")
    assert put.returncode == 0, put.stderr
    got = client.apiserver("get", "/registry/engine/e2e", "--print-value-only")
    assert got.stdout.strip() == "real-engine", got.stdout + got.stderr

    # The operator's snippet, sourced as the README says, in a shell of its own.
    snippet = files / "etcdctl.env"
    snippet.write_text(outputs["etcdctl_env"])
    operator = client.run(["sh", "-c", 'set -a; . "$1"; set +a; exec "$2" endpoint health --cluster',
                           "sh", str(snippet), client.etcdctl], HOME=str(files))
    assert operator.returncode == 0, operator.stdout + operator.stderr
    # etcdctl 3.4 reports health on stderr, 3.5 on stdout.
    assert (operator.stdout + operator.stderr).count("is healthy") == 3, operator


def check_consumer(etcd: Project, directory: Path) -> None:
    """examples/kubeadm-consumer against the etcd stack's state, through a real StackReference."""
    consumer = directory
    shutil.copytree(REPO / "examples" / "kubeadm-consumer", consumer,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (consumer / ".venv").symlink_to(REPO / ".venv")
    env = {**etcd.env(), "HOME": str(consumer)}

    def pulumi(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(etcd.toolchain / "bin" / "pulumi"), *args], cwd=consumer,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"pulumi {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    pulumi("stack", "init", "consumer", "--non-interactive")
    pulumi("config", "set", "etcdStack", f"organization/etcd-cluster/{STACK}")
    pulumi("up", "--yes", "--skip-preview")
    outputs = json.loads(pulumi("stack", "output", "--json", "--show-secrets").stdout)
    endpoints = etcd.outputs(STACK)["endpoints"]
    assert all(endpoint in outputs["cluster_configuration"] for endpoint in endpoints), outputs
    assert outputs["kube_apiserver_etcd_flags"], outputs
    assert "PRIVATE KEY" in json.dumps(outputs["etcd_pki_files"])
    plain = json.loads(pulumi("stack", "output", "--json").stdout)
    assert plain["etcd_pki_files"] == "[secret]", plain
    pulumi("destroy", "--yes")


def _qemu_processes_under(directory: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "qemu-system" in cmdline and str(directory) in cmdline:
                found.append(int(proc.name))
    return found



def repository_copy(directory: Path) -> Path:
    """The scripts and toolchain sources as a fresh clone has them (git's tracked files)."""
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "scripts", "toolchain"],
                             capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, tracked):
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return directory


def pulumi_env(copy: Path, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    home = copy / "home"
    home.mkdir(exist_ok=True)
    # PULUMI_HOME too: the CLI finds the user's home from the password database, not $HOME.
    return subprocess.run([str(copy / "scripts" / "pulumi-env")], cwd=copy, capture_output=True,
                          text=True, timeout=600,
                          env={"PATH": path, "HOME": str(home), "LANG": "C.UTF-8",
                               "PULUMI_HOME": str(home / ".pulumi"), **env})


def test_without_a_pulumi_cli_the_first_command_uses_the_built_toolchain_and_says_so(
        toolchain: Path) -> None:
    with scratch_dir("engine-env-") as directory:
        copy = repository_copy(directory)
        # No pulumi anywhere on PATH; Go stays, as on a machine that can build the toolchain.
        go = shutil.which("go")
        path = ":".join([*([str(Path(go).parent)] if go else []), "/usr/bin", "/bin"])
        done = pulumi_env(copy, path, ETCD_PULUMI_TOOLCHAIN_CACHE=str(toolchain.parent))
        assert done.returncode == 0, done.stderr
        assert "no Pulumi CLI on PATH: using the project's own build" in done.stderr, done.stderr
        exports = dict(line.removeprefix("export ").split("=", 1)
                       for line in done.stdout.splitlines())
        assert exports["PATH"].startswith(f"{toolchain}/bin:"), exports
        # The local stack needs no questions: a file backend and a generated passphrase.
        assert exports["PULUMI_BACKEND_URL"] == f"file://{copy}/.local/state", exports
        passphrase = copy / ".local" / "passphrase"
        assert exports["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(passphrase), exports
        assert oct(passphrase.stat().st_mode & 0o777) == "0o600"
        assert len(passphrase.read_text().strip()) >= 32
        # The plugins are installed into the user's plugin cache, the CLI's own way.
        installed = sorted(path.name for path in (copy / "home" / ".pulumi" / "plugins").iterdir()
                           if path.is_dir())
        assert installed == ["resource-command-v1.2.1", "resource-tls-v5.6.2"], installed
        # A second run keeps the passphrase (the stack's secrets stay readable).
        first = passphrase.read_text()
        again = pulumi_env(copy, path, ETCD_PULUMI_TOOLCHAIN_CACHE=str(toolchain.parent))
        assert again.returncode == 0, again.stderr
        assert passphrase.read_text() == first


def test_a_pulumi_cli_on_path_is_used_as_it_is(toolchain: Path) -> None:
    with scratch_dir("engine-env-own-") as directory:
        copy = repository_copy(directory)
        bin_dir = directory / "users-bin"
        bin_dir.mkdir()
        (bin_dir / "pulumi").symlink_to(toolchain / "bin" / "pulumi")
        done = pulumi_env(copy, f"{bin_dir}:/usr/bin:/bin",
                          PULUMI_BACKEND_URL="file:///somewhere", PULUMI_CONFIG_PASSPHRASE="")
        assert done.returncode == 0, done.stderr
        assert f"using the Pulumi CLI on PATH: {bin_dir}/pulumi" in done.stderr, done.stderr
        # Nothing chosen for a user who chose: no PATH, backend or passphrase of ours.
        assert done.stdout == "", done.stdout
