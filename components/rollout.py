"""Day-2 rollouts over SSH: each member's steps pulumi-command `remote.Command`s, in one chain.

First, each member that leaves the running cluster (a shrink), highest number first: its leave
step (`etcd-member-leave` on the lowest-numbered member that stays: leadership moved away, the
member removed, the cluster healthy without it); Pulumi deletes the leaving machines only after
every step. Then each member that joins it (a grow, or a member whose machine was replaced), in
member order: its join step (`etcd-member-join` on the new machine: added as a learner, caught
up, promoted, the cluster healthy with it). A replaced member's leave comes before the
machines (`replacement_leave`: its new machine waits for it). Then per member, in member order:
its files step (the member files' archive: scripts, backup and defragmentation timers, backup
settings; etcd is not touched), its certificate step (renewed server and peer certificates and
keys), then its configuration step (the pinned etcd release and the member's etcd unit; etcd is
restarted when either changed). Every step depends on the one before it, so the engine runs
them one after another and stops at the first that fails; each step that touches etcd runs
`etcd-cluster-gate` (the whole cluster healthy) before and after it, so no step ever takes a
second member down. A step re-runs when its input changes (a renewed certificate, a new
`etcdVersion`, changed flags, new scripts or backup settings), so such changes reach every running member in
turn by an ordinary `pulumi up`, and `pulumi preview` lists the steps that will run, in order.
A failed `pulumi up` resumes where it stopped: the member-side scripts change nothing where
there is nothing to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components.naming import ChildNames
from model import rollout
from model.topology import Member

# Members boot at their own pace: keep dialling a member whose sshd is not up yet (15 s each).
DIAL_ERROR_LIMIT = 80


@dataclass(frozen=True)
class MemberRolloutArgs:
    # In rollout order.
    members: tuple[Member, ...]
    # The members that join the running cluster, in the order they join (before any other
    # step, whose gates expect every member); a join runs once per member and generation.
    joining: tuple[Member, ...]
    # Per member name: its generation (model/replacement.py), its join step's replacement
    # trigger, so a member whose machine is replaced joins again.
    generations: Mapping[str, int]
    # The members that leave the running cluster, in the order they leave (before any other
    # step, whose gates expect the members that stay).
    leaving: tuple[Member, ...]
    # The running members' client URLs, through which a joining member reaches the cluster.
    join_endpoints: list[str]
    # What the first step waits for (the members' DNS records: a joining member's peers check
    # its certificate against its name).
    after: list[pulumi.Resource]
    # Per member name: the address the runner dials.
    addresses: Mapping[str, pulumi.Output[str]]
    # Per member name: its certificate bundle (secret; the certificate step's standard input).
    bundles: Mapping[str, pulumi.Output[str]]
    # Per member name: its etcd.service (the configuration step's standard input).
    units: Mapping[str, str]
    # The member files' archive (the files step's standard input; secret with backups).
    member_files: pulumi.Output[str]
    # Backups are on: each files step checks their settings against the bucket.
    check_backups: bool
    # The configuration step's command (model/rollout.py `configuration_step`).
    configuration_command: str
    # The deploy key, OpenSSH private key format (secret).
    deploy_key: pulumi.Output[str]
    bastion: rollout.Bastion | None
    expected_members: int


class MemberRollout(pulumi.ComponentResource):
    # Every step, in the order they run: (member name, "leave" | "join" | "files" |
    # "certificates" | "configuration", step).
    steps: list[tuple[str, str, command.remote.Command]]

    def __init__(self, name: str, args: MemberRolloutArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("etcd-cluster:index:MemberRollout", name, None, opts)
        self._names = ChildNames(self, name, keep_unprefixed=False)
        self._args = args
        self.steps = []
        # A member that stays runs the leaves: the leaving machine may be down.
        stays = args.members[0]
        for member in args.leaving:
            self._step(member, "leave", rollout.leave_step(member.name, member.peer_url), None,
                       runs_on=stays)
        for member in args.joining:
            # Once per member and generation: a later change of the running members is no
            # reason to join again, a new machine is.
            self._step(member, "join",
                       rollout.join_step(member.name, member.peer_url, args.join_endpoints),
                       None, ignore_changes=["create"],
                       replacement_trigger=args.generations.get(member.name, 0))
        for member in args.members:
            self._step(member, "files", rollout.files_step(member.name, args.check_backups),
                       args.member_files)
            self._step(member, "certificates",
                       rollout.certificate_step(args.expected_members, member.fqdn),
                       args.bundles[member.name])
            self._step(member, "configuration", args.configuration_command,
                       pulumi.Output.from_input(args.units[member.name]))
        self.register_outputs({"steps": [f"{member}-{what}" for member, what, _ in self.steps]})

    def _step(self, member: Member, what: str, create: str, stdin: pulumi.Output[str] | None,
              ignore_changes: list[str] | None = None, runs_on: Member | None = None,
              replacement_trigger: int | None = None) -> None:
        """`member`'s step `what`, run on `runs_on` (default: the member's own machine)."""
        previous: list[pulumi.Resource] = [self.steps[-1][2]] if self.steps else list(self._args.after)
        step = command.remote.Command(
            self._names.name(f"{member.name}-{what}"),
            connection=connection(self._args.addresses[(runs_on or member).name],
                                  self._args.deploy_key, self._args.bastion),
            create=create,
            stdin=stdin,
            # The scripts print what they check and do, never a key.
            logging=command.remote.Logging.STDOUT_AND_STDERR,
            opts=self._names.opts(f"{member.name}-{what}", depends_on=previous or None,
                                  ignore_changes=ignore_changes,
                                  replacement_trigger=replacement_trigger),
        )
        self.steps.append((member.name, what, step))


def connection(host: pulumi.Input[str], deploy_key: pulumi.Output[str],
               bastion: rollout.Bastion | None) -> command.remote.ConnectionArgs:
    """How the runner reaches a member: as the rollout user, with the deploy key."""
    proxy = None
    if bastion is not None:
        proxy = command.remote.ProxyConnectionArgs(host=bastion.host, port=bastion.port,
                                                   user=bastion.user)
    return command.remote.ConnectionArgs(host=host, user=rollout.ROLLOUT_USER,
                                         private_key=deploy_key,
                                         dial_error_limit=DIAL_ERROR_LIMIT, proxy=proxy)


def replacement_leave(name: str, member: Member, runs_on_address: str,
                      deploy_key: pulumi.Output[str], bastion: rollout.Bastion | None,
                      opts: pulumi.ResourceOptions) -> command.remote.Command:
    """The leave of a member whose machine this update replaces (model/replacement.py), run on
    a member that stays, at the address the stack recorded for it: the replaced machine waits
    for it, so it is registered before any machine, and the member is out of the cluster
    before its machine is deleted."""
    return command.remote.Command(
        name,
        connection=connection(runs_on_address, deploy_key, bastion),
        create=rollout.leave_step(member.name, member.peer_url),
        logging=command.remote.Logging.STDOUT_AND_STDERR,
        opts=opts,
    )
