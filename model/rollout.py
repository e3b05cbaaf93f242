"""Day-2 rollouts: how the runner of `pulumi up` reaches running members, and what it runs there.

Pure: no Pulumi imports. Every change of a running cluster reaches it over SSH, one member at a
time: the program connects as `ROLLOUT_USER` with a deploy key it generates (a secret in the
state; its public half is in each member's user-data) and may run only the member-side scripts
below, through sudo. Each member's step checks the whole cluster before and after it touches
the member (`etcd-cluster-gate`), so a rollout stops at the first unhealthy state.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

ROLLOUT_USER = "etcd-rollout"
SBIN = "/usr/local/sbin"
GATE = f"{SBIN}/etcd-cluster-gate"
INSTALL_CERTS = f"{SBIN}/etcd-install-certs"
RECONFIGURE = f"{SBIN}/etcd-reconfigure"
MEMBER_JOIN = f"{SBIN}/etcd-member-join"
MEMBER_LEAVE = f"{SBIN}/etcd-member-leave"
INSTALL_FILES = f"{SBIN}/etcd-install-files"
# What the rollout user may run as root, and nothing else.
SUDO_COMMANDS = (GATE, INSTALL_CERTS, RECONFIGURE, MEMBER_JOIN, MEMBER_LEAVE, INSTALL_FILES)
# How long a joining learner may take to catch up before the join removes it again.
JOIN_TIMEOUT_SECONDS = 600
# How long a leave may wait for each of its gates and for leadership to move.
LEAVE_TIMEOUT_SECONDS = 300
# How long a gate waits for the whole cluster to be healthy before it stops the rollout.
GATE_TIMEOUT_SECONDS = 600

# private: the members' private addresses (local backends; a runner inside the VPC);
# public: their public addresses (the firewall must admit the runner: adminCidrs);
# none: running members are not changed (day-1 only; certificate expiry keeps warning).
RolloutVia = Literal["private", "public", "none"]
ROLLOUT_VIAS: tuple[RolloutVia, ...] = ("private", "public", "none")


@dataclass(frozen=True)
class Bastion:
    """A jump host the runner reaches the members through (authenticated by the runner's agent)."""

    host: str
    user: str
    port: int = 22


@dataclass(frozen=True)
class RolloutSpec:
    via: RolloutVia
    bastion: Bastion | None = None
    # The member `replaceMember` names (model/replacement.py); None: no replacement.
    replace_member: str | None = None

    @property
    def enabled(self) -> bool:
        return self.via != "none"


def sudoers_rule() -> str:
    """cloud-init's `sudo` entry for the rollout user: the scripts, without a password."""
    return f"ALL=(root) NOPASSWD: {', '.join(SUDO_COMMANDS)}"


def _gated(expected_members: int, step: list[str]) -> str:
    """`step` run as root between two whole-cluster health gates."""
    gate = shlex.join(["sudo", "-n", GATE, "--expect-members", str(expected_members),
                       "--timeout", str(GATE_TIMEOUT_SECONDS)])
    return f"{gate} && {shlex.join(['sudo', '-n', *step])} && {gate}"


def certificate_step(expected_members: int, fqdn: str) -> str:
    """The remote command of one member's certificate step (the bundle comes on stdin)."""
    return _gated(expected_members, [INSTALL_CERTS, "--fqdn", fqdn, "-"])


def configuration_step(expected_members: int, version: str, url: str, sha256: str,
                       previous_line_minimum: str | None) -> str:
    """The remote command of one member's configuration step: the pinned release and the
    member's etcd unit (on stdin) installed, etcd restarted if either changed. The member-side
    script reads the running versions from the cluster and refuses a path etcd does not support
    before it touches anything."""
    step = [RECONFIGURE, "--version", version, "--url", url, "--sha256", sha256]
    if previous_line_minimum is not None:
        step += ["--previous-minor-from", previous_line_minimum]
    return _gated(expected_members, [*step, "-"])


# Until the member's first boot is over: cloud-init writes boot-finished at its end, and
# `cloud-init status --wait` returns then (or at an error). The file is tested first: on a member
# that runs (every step but a new machine's first) that spares starting Python, seconds on a
# small or emulated machine.
BOOT_FINISHED_WAIT = ("[ -e /var/lib/cloud/instance/boot-finished ] || "
                      "cloud-init status --wait >/dev/null 2>&1 || :")


def files_step(name: str, check_backups: bool) -> str:
    """The remote command of one member's files step: the member files' archive (on stdin:
    the scripts, the maintenance timers, the backup settings) installed where it differs
    (`etcd-install-files`); etcd itself is not touched, so the step needs no health gate. With
    backups, their settings are checked against the bucket. A member created before the
    rollout user could run the installer is named, with the way out."""
    # A new member's boot may still be installing the same files.
    wait = BOOT_FINISHED_WAIT
    allowed = shlex.join(["sudo", "-n", "-l", INSTALL_FILES])
    older = (f"{name} was created by a version of this program whose rollout user may not run "
             f"{INSTALL_FILES}, so no pulumi up can give it scripts, timers or backup settings: "
             f"replace it (pulumi config set replaceMember {name}; one member per update), or "
             "install the installer by hand (README, \"Members created by older versions\")")
    install = shlex.join(["sudo", "-n", INSTALL_FILES,
                          *(["--check-backups"] if check_backups else []), "-"])
    return (f"{wait}; if ! {allowed} >/dev/null 2>&1; then "
            f"echo {shlex.quote(f'etcd-install-files: {older}')} >&2; exit 1; fi; {install}")


def join_step(name: str, peer_url: str, endpoints: list[str]) -> str:
    """The remote command of one member's join: on the new machine, once its boot has finished
    (its etcd and scripts installed), `etcd-member-join` through the running members' client
    URLs: added as a learner, started, promoted once in sync, the whole cluster healthy with it
    (or the learner removed again at its deadline, the cluster as it was)."""
    # How the boot went is the join's to judge (it fails, naming the file or tool that is
    # missing).
    wait = BOOT_FINISHED_WAIT
    join = shlex.join(["sudo", "-n", MEMBER_JOIN, "--name", name, "--peer-url", peer_url,
                       "--endpoints", ",".join(endpoints),
                       "--timeout", str(JOIN_TIMEOUT_SECONDS)])
    return f"{wait}; {join}"


def leave_step(name: str, peer_url: str) -> str:
    """The remote command of one member's leave, run on a member that stays (the leaving
    machine may be down): `etcd-member-leave` moves leadership away from the member, removes
    it, and checks the cluster healthy without it; refused, changing nothing, when the rest of
    the cluster is not healthy. The peer URL also finds a member whose join was interrupted
    before it first started (etcd lists it without a name)."""
    return shlex.join(["sudo", "-n", MEMBER_LEAVE, "--name", name, "--peer-url", peer_url,
                       "--timeout", str(LEAVE_TIMEOUT_SECONDS)])


def not_configured_warning(cluster: str) -> str:
    return (f"{cluster}: running members cannot be changed by `pulumi up` (rolloutVia = none): "
            "renewed certificates, new etcd releases, new flags and new backup settings or "
            "schedules reach new members only, and "
            "members' certificates expire on their date. Set `pulumi config set rolloutVia "
            "private` (the runner reaches the members' private addresses, e.g. from inside the "
            "VPC or through rolloutBastionHost) or `public` (adminCidrs must admit the runner).")


# The files of a member's certificate bundle, in the order they are sent.
BUNDLE_FILES = ("server.crt", "server.key", "peer.crt", "peer.key")


def certificate_bundle(server_cert: str, server_key: str, peer_cert: str, peer_key: str) -> str:
    """A member's new certificates and keys as `etcd-install-certs -` reads them on stdin: the
    four PEM documents concatenated in BUNDLE_FILES order (no file on the runner's disk)."""
    return "".join(f"{pem.strip()}\n" for pem in (server_cert, server_key, peer_cert, peer_key))
