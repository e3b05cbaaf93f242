"""Machines, the leave steps of the machines the config drops, and a step after them.

Every command appends a line to the file `log` names, so the test reads the order the engine
ran them in: a shrink deletes its machines only after its leave steps (and every other step)
have run, because the engine deletes what a program no longer registers after the program's
registrations are done.
"""

import shlex

import pulumi
import pulumi_command as command

config = pulumi.Config()
log = config.require("log")
machines = config.require_object("machines")
leaving = config.get_object("leaving") or []


def append(line: str) -> str:
    return f"sleep 1; echo {shlex.quote(line)} >> {shlex.quote(log)}"


for name in machines:
    command.local.Command(f"machine-{name}", create=append(f"create {name}"),
                          delete=append(f"delete {name}"))
previous: list[pulumi.Resource] = []
for name in leaving:
    previous = [command.local.Command(f"leave-{name}", create=append(f"leave {name}"),
                                      opts=pulumi.ResourceOptions(depends_on=previous))]
command.local.Command(f"rollout-{len(machines)}", create=append(f"rollout {len(machines)}"),
                      opts=pulumi.ResourceOptions(depends_on=previous))
