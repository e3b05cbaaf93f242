"""Members as VMs on this machine, each one pulumi-command `local.Command` running a script.

Shared by qemu.py and virtualbox.py. The create script clones/boots the VM from the member's
user-data (stdin) and waits for cloud-init; the delete script stops it and removes its files.

pulumi-command re-runs `create` when an input changes, on a VM that already exists; so, as on
DigitalOcean, nothing this program may change touches a running member: every input is in
`ignore_changes`, and with `protectMembers` the commands are protected. Replacing a member is a
deliberate `replaceMember` (model/replacement.py): its VM is deleted and created again, with a
new, empty data disk (the disk is one of the VM's files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_command as command

from components import vm_spec
from components.naming import ChildNames
from components.nodes import MachineReplacement, MemberMachine

COMMAND_INPUTS = ["create", "delete", "environment", "interpreter", "stdin", "dir"]


@dataclass(frozen=True)
class LocalVm:
    """One member's VM: its static address and its scripts' ETCD_VM_* environment."""

    address: str
    environment: Mapping[str, str]


@dataclass(frozen=True)
class LocalVmMembersArgs:
    # Per member name.
    vms: Mapping[str, LocalVm]
    scripts: vm_spec.VmScripts
    # Per member name; secret (EtcdCluster renders it as a secret Output, in one place).
    user_data: Mapping[str, pulumi.Output[str]]
    protect: bool
    keep_unprefixed_names: bool = False
    replacement: MachineReplacement = field(default_factory=MachineReplacement)


class LocalVmMembers(pulumi.ComponentResource):
    machines: dict[str, MemberMachine]

    def __init__(self, type_name: str, name: str, args: LocalVmMembersArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_name, name, None, opts)
        names = ChildNames(self, name, args.keep_unprefixed_names)
        self.machines = {}
        for member_name, spec in args.vms.items():
            vm = command.local.Command(
                names.name(member_name),
                create=args.scripts.create,
                delete=args.scripts.delete,
                interpreter=vm_spec.INTERPRETER,
                environment=dict(spec.environment),
                stdin=args.user_data[member_name],
                # The scripts print progress only; the user-data never reaches their output.
                logging=command.local.Logging.STDOUT_AND_STDERR,
                opts=names.opts(member_name, protect=args.protect,
                                ignore_changes=COMMAND_INPUTS,
                                replacement_trigger=args.replacement.trigger(member_name),
                                delete_before_replace=True,
                                depends_on=args.replacement.waits_for(member_name)),
            )
            # The address is static, but DNS records and outputs should follow the VM's creation.
            self.machines[member_name] = MemberMachine(
                private_ipv4=_once_created(vm, spec.address),
                public_ipv4=None,
            )
        self.register_outputs({
            "private_ipv4": {member: machine.private_ipv4
                             for member, machine in self.machines.items()},
        })


def _once_created(vm: command.local.Command, address: str) -> pulumi.Output[str]:
    return vm.stdout.apply(lambda _: address)
