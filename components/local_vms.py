"""Members as VMs on this machine, each one pulumi-command `local.Command` running a script.

Shared by qemu.py and virtualbox.py. The create script clones/boots the VM from the member's
user-data (stdin) and waits for cloud-init; the delete script stops it and removes its files.

pulumi-command re-runs `create` when an input changes, on a VM that already exists; so, as on
DigitalOcean, nothing this program may change touches a running member: every input is in
`ignore_changes`, and with `protectMembers` the commands are protected. Replacing a member is a
deliberate `pulumi up --replace <urn>`, one member at a time (README: "Replacing a member").
"""

from __future__ import annotations

import pulumi
import pulumi_command as command

from components import vm_spec
from components.nodes import MemberMachine
from model.settings import Settings
from model.topology import Topology

COMMAND_INPUTS = ["create", "delete", "environment", "interpreter", "stdin", "dir"]


class LocalVmMembers(pulumi.ComponentResource):
    machines: dict[str, MemberMachine]

    def __init__(self, type_name: str, name: str, settings: Settings, topology: Topology,
                 user_data: dict[str, pulumi.Output[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_name, name, None, opts)
        scripts = vm_spec.scripts(settings.backend)
        self.machines = {}
        for member in topology.members:
            address = vm_spec.static_ipv4(settings, member)
            # Secret already: EtcdCluster renders it as a secret Output (one place).
            member_user_data = user_data[member.name]
            vm = command.local.Command(
                member.name,
                create=scripts.create,
                delete=scripts.delete,
                interpreter=vm_spec.INTERPRETER,
                environment=vm_spec.environment(settings, member),
                stdin=member_user_data,
                # The scripts print progress only; the user-data never reaches their output.
                logging=command.local.Logging.STDOUT_AND_STDERR,
                opts=pulumi.ResourceOptions(parent=self, protect=settings.protect_members,
                                            ignore_changes=COMMAND_INPUTS),
            )
            # The address is static, but DNS records and outputs should follow the VM's creation.
            self.machines[member.name] = MemberMachine(
                private_ipv4=_once_created(vm, address),
                public_ipv4=None,
            )
        self.register_outputs({})


def _once_created(vm: command.local.Command, address: str) -> pulumi.Output[str]:
    return vm.stdout.apply(lambda _: address)
