"""Day-2 rollouts under mocks: each member's steps over SSH, one member after another.

What the program asks the engine for: a deploy key (secret), a rollout user on every member
(its public key, sudo for the rollout scripts only), and per member two `command:remote:Command`s
(its certificates, then its etcd release and unit), all in one chain: each step depends on the
one before it, dials the address `rolloutVia` names (through the bastion, if set), and gets its
input on stdin (the certificates as a secret).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from typing import Any

import pytest
import yaml
from program import DROPLET, PRIVATE_KEY, ProgramError, ProgramRun, run_program
from realcheck import SCRIPTS_DIR
from test_program_local import LOCAL_STACK

from cloudinit import member_files
from model import releases, rollout
from model.settings import SettingsError

REMOTE = "command:remote:Command"
QEMU = {**LOCAL_STACK, "cloudflareZoneId": None}
MEMBERS = ("etcd-1", "etcd-2", "etcd-3")


@pytest.fixture(scope="module")
def local(program: Any) -> ProgramRun:
    run: ProgramRun = program(QEMU, "local")
    return run


def steps(run: ProgramRun, kind: str = "certificates") -> dict[str, Any]:
    """The steps of one kind, by member name."""
    return {name.removesuffix(f"-{kind}"): reg for name, reg in run.named(REMOTE).items()
            if name.endswith(f"-{kind}")}


def chain(run: ProgramRun) -> list[Any]:
    """Every rollout step, in the order the program registered them."""
    return run.of_type(REMOTE)


def test_each_member_gets_a_files_step_a_certificate_step_then_a_configuration_step_in_member_order(
        local: ProgramRun) -> None:
    assert [step.short_name for step in chain(local)] == [
        f"{member}-{kind}" for member in MEMBERS
        for kind in ("files", "certificates", "configuration")]


def test_each_step_waits_for_the_one_before_so_no_two_steps_ever_run_at_once(
        local: ProgramRun) -> None:
    ordered = chain(local)
    step_urns = {step.urn for step in ordered}
    assert not ordered[0].all_dependencies & step_urns
    for previous, step in itertools.pairwise(ordered):
        assert step.all_dependencies & step_urns == {previous.urn}, step.short_name


def test_the_step_dials_the_members_address_as_the_rollout_user_with_the_deploy_key(
        local: ProgramRun) -> None:
    (key,) = [reg for name, reg in local.named(PRIVATE_KEY).items() if name == "rollout-deploy-key"]
    assert key.inputs["algorithm"] == "ED25519"
    assert key.outputs is not None
    for step in chain(local):
        index = int(step.short_name.split("-")[1])
        connection = step.inputs["connection"]
        assert connection["host"] == f"192.168.56.{10 + index}", step.short_name
        assert connection["user"] == rollout.ROLLOUT_USER
        assert connection["privateKey"] == key.outputs["privateKeyOpenssh"]
        assert "connection" in step.secret_inputs, "the deploy key must travel as a secret"


def test_the_step_gates_the_whole_cluster_before_and_after_installing(local: ProgramRun) -> None:
    for member, step in steps(local).items():
        assert step.inputs["create"] == (
            "sudo -n /usr/local/sbin/etcd-cluster-gate --expect-members 3 --timeout 600 && "
            f"sudo -n /usr/local/sbin/etcd-install-certs --fqdn {member}.local.etcd.internal - && "
            "sudo -n /usr/local/sbin/etcd-cluster-gate --expect-members 3 --timeout 600")
        assert "delete" not in step.inputs


def test_each_member_receives_its_own_certificates_as_a_secret(local: ProgramRun) -> None:
    certs = local.certificates
    for member, step in steps(local).items():
        assert "stdin" in step.secret_inputs
        bundle = step.inputs["stdin"]
        # The four PEM documents in order: server cert, server key, peer cert, peer key.
        kinds = [line.removeprefix("-----BEGIN ") for line in bundle.splitlines()
                 if line.startswith("-----BEGIN ")]
        assert [kind.endswith("PRIVATE KEY-----") for kind in kinds] == [False, True, False, True]
        for kind in ("server", "peer"):
            pem = local.named("tls:index/locallySignedCert:LocallySignedCert")[
                f"{member}-{kind}-cert"].outputs
            assert pem is not None and pem["certPem"].strip() in bundle, (member, kind)
        assert certs[f"{member}-server-cert"]  # the certificate exists in the PKI


def test_members_get_a_rollout_user_with_the_public_key_and_sudo_for_the_scripts_only(
        local: ProgramRun) -> None:
    (key,) = [reg for name, reg in local.named(PRIVATE_KEY).items() if name == "rollout-deploy-key"]
    assert key.outputs is not None
    for member in MEMBERS:
        users = yaml.safe_load(local.user_data[member])["users"]
        (user,) = [entry for entry in users if isinstance(entry, dict)
                   and entry["name"] == rollout.ROLLOUT_USER]
        assert user["ssh_authorized_keys"] == [key.outputs["publicKeyOpenssh"].strip()]
        # The membership scripts too: a grow runs etcd-member-join on the new member; and the
        # installer of the scripts, timers and backup settings.
        assert user["sudo"] == ("ALL=(root) NOPASSWD: /usr/local/sbin/etcd-cluster-gate, "
                                "/usr/local/sbin/etcd-install-certs, "
                                "/usr/local/sbin/etcd-reconfigure, "
                                "/usr/local/sbin/etcd-member-join, "
                                "/usr/local/sbin/etcd-member-leave, "
                                "/usr/local/sbin/etcd-install-files")
        assert user["lock_passwd"] is True


def test_digitalocean_without_a_rollout_path_warns_and_creates_no_step(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pulumi-program"):
        run = run_program({})
    assert run.of_type(REMOTE) == []
    assert "rollout-deploy-key" not in run.named(PRIVATE_KEY)
    messages = [record.getMessage() for record in caplog.records if "rolloutVia" in record.getMessage()]
    assert len(messages) == 1
    assert "pulumi config set rolloutVia private" in messages[0]
    users = yaml.safe_load(run.user_data["etcd-1"])["users"]
    assert not [entry for entry in users if isinstance(entry, dict)
                and entry["name"] == rollout.ROLLOUT_USER]


@pytest.mark.parametrize(("via", "address"), [("private", "ipv4AddressPrivate"),
                                              ("public", "ipv4Address")])
def test_on_digitalocean_the_step_dials_the_address_rollout_via_names(
        program: Any, via: str, address: str) -> None:
    run: ProgramRun = program({"rolloutVia": via, "adminCidrs": ["198.51.100.0/24"]})
    droplets = run.named(DROPLET)
    for step in chain(run):
        outputs = droplets["-".join(step.short_name.split("-")[:2])].outputs
        assert outputs is not None
        assert step.inputs["connection"]["host"] == outputs[address]


def test_a_bastion_is_the_steps_proxy(program: Any) -> None:
    run: ProgramRun = program({"rolloutVia": "private", "rolloutBastionHost": "bastion.example.com",
                               "rolloutBastionUser": "jump", "rolloutBastionPort": 2222})
    for step in chain(run):
        proxy = step.inputs["connection"]["proxy"]
        assert (proxy["host"], proxy["user"], proxy["port"]) == ("bastion.example.com", "jump", 2222)


def test_the_events_cluster_rolls_out_on_its_own_chain(program: Any) -> None:
    run: ProgramRun = program({**QEMU, "eventsCluster": True, "eventsMemberCount": 1}, "local")
    events = chain(run.cluster("local-events"))
    assert [step.short_name for step in events] == ["etcd-events-1-files",
                                                    "etcd-events-1-certificates",
                                                    "etcd-events-1-configuration"]
    for step in events[1:]:
        assert step.inputs["create"].count("--expect-members 1") == 2
    main_urns = {step.urn for step in chain(run.cluster("local"))}
    assert not any(step.all_dependencies & main_urns for step in events)


def test_the_configuration_step_installs_the_pinned_release_between_two_gates(
        program: Any) -> None:
    run: ProgramRun = program({"rolloutVia": "private"})
    url = "https://github.com/etcd-io/etcd/releases/download/v3.6.14/etcd-v3.6.14-linux-amd64.tar.gz"
    sha256 = run.config.get("etcd-cluster:etcdSha256") or releases.known_sha256("3.6.14")
    for step in steps(run, "configuration").values():
        assert step.inputs["create"] == (
            "sudo -n /usr/local/sbin/etcd-cluster-gate --expect-members 3 --timeout 600 && "
            "sudo -n /usr/local/sbin/etcd-reconfigure --version 3.6.14 "
            f"--url {url} --sha256 {sha256} "
            # etcd's 3.5 -> 3.6 guide: every member on 3.5.32 or later first.
            "--previous-minor-from 3.5.32 - && "
            "sudo -n /usr/local/sbin/etcd-cluster-gate --expect-members 3 --timeout 600")


def test_a_release_whose_line_has_no_entry_minimum_is_sent_without_one(program: Any) -> None:
    run: ProgramRun = program({"rolloutVia": "private", "etcdVersion": "3.5.33"})
    for step in steps(run, "configuration").values():
        assert "--version 3.5.33 " in step.inputs["create"]
        assert "--previous-minor-from" not in step.inputs["create"]


def test_the_configuration_step_sends_the_members_etcd_unit_exactly_as_its_user_data_has_it(
        local: ProgramRun) -> None:
    for member, step in steps(local, "configuration").items():
        files = {entry["path"]: entry["content"]
                 for entry in yaml.safe_load(local.user_data[member])["write_files"]}
        assert step.inputs["stdin"] == files["/etc/systemd/system/etcd.service"], member
        assert f"--name={member}" in step.inputs["stdin"]
        assert "stdin" not in step.secret_inputs, "a unit holds no secret: preview shows its diff"


def test_a_tuning_change_reaches_only_the_configuration_steps(program: Any) -> None:
    before: ProgramRun = program(QEMU, "local")
    after: ProgramRun = program({**QEMU, "snapshotCount": 25000}, "local")
    for member in MEMBERS:
        old, new = steps(before, "configuration")[member], steps(after, "configuration")[member]
        assert old.inputs["stdin"] != new.inputs["stdin"], member
        assert old.inputs["create"] == new.inputs["create"], member
        # (The certificates are the mock's own per run; what a step runs is the same.)
        assert (steps(before)[member].inputs["create"] == steps(after)[member].inputs["create"])
    assert "--snapshot-count=25000" in steps(after, "configuration")["etcd-1"].inputs["stdin"]


def test_a_new_etcd_version_changes_every_configuration_step_and_no_certificate_step(
        program: Any) -> None:
    before: ProgramRun = program({"rolloutVia": "private", "etcdVersion": "3.5.33"})
    after: ProgramRun = program({"rolloutVia": "private"})
    for member in MEMBERS:
        assert (steps(before)[member].inputs["create"] == steps(after)[member].inputs["create"])
        old = steps(before, "configuration")[member].inputs["create"]
        new = steps(after, "configuration")[member].inputs["create"]
        assert "--version 3.5.33 " in old and "--version 3.6.14 " in new


def test_what_no_rollout_reaches_is_exported_so_preview_shows_its_changes(
        program: Any) -> None:
    exported = program({"rolloutVia": "private"}).output("new_members_only")
    assert exported["packages"] == ["ca-certificates", "curl", "nftables", "openssl"]
    assert set(exported["files"]) == {"/etc/systemd/system/etcd-metadata-guard.service",
                                      "/etc/etcd/etcdctl.env"}


def test_what_the_files_step_installs_is_exported_so_preview_names_each_changed_file(
        program: Any) -> None:
    exported = program({"rolloutVia": "private"}).output("member_files")
    scripts = {f"/usr/local/sbin/{path.name}":
               hashlib.sha256(member_files.installed_copy(path.name).encode()).hexdigest()
               for path in SCRIPTS_DIR.iterdir()}
    assert {path: digest for path, digest in exported.items()
            if path.startswith("/usr/local/sbin/")} == scripts
    # The defragmentation timer is on by default; no backups without a bucket.
    assert sorted(path for path in exported if path.startswith("/etc/")) == [
        "/etc/systemd/system/etcd-defrag.service", "/etc/systemd/system/etcd-defrag.timer"]


@pytest.mark.parametrize(("config", "message"), [
    ({"rolloutVia": "ssh"}, "etcd-cluster:rolloutVia = 'ssh': must be private"),
    ({**QEMU, "rolloutVia": "public"}, "etcd-cluster:rolloutVia = 'public': qemu members have no "
                                       "public address; use private."),
    ({"rolloutBastionHost": "b.example.com"}, "etcd-cluster:rolloutBastionHost = 'b.example.com': "
                                              "is set but rolloutVia is none"),
])
def test_bad_rollout_settings_are_refused_before_anything_is_created(
        config: dict[str, Any], message: str) -> None:
    stack = "local" if "backend" in config else "dev"
    with pytest.raises(ProgramError) as failure:
        run_program(config, stack)
    assert isinstance(failure.value.error, SettingsError)
    assert any(problem.startswith(message) for problem in failure.value.error.problems), \
        failure.value.error.problems
    assert [reg for reg in failure.value.registrations if reg.custom] == []


def test_an_etcd_release_older_than_etcds_production_minimum_is_warned_about_at_preview(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pulumi-program"):
        run_program({"etcdVersion": "3.5.1", "etcdSha256": "a" * 64})
    messages = [record.getMessage() for record in caplog.records
                if "recommend for production" in record.getMessage()]
    assert len(messages) == 1, messages
    assert "etcdVersion 3.5.1 is older than 3.5.6" in messages[0]


def test_the_default_etcd_release_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pulumi-program"):
        run_program({})
    assert not [record for record in caplog.records
                if "recommend for production" in record.getMessage()]
