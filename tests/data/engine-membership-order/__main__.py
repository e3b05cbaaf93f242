"""Machines, the leave steps of the machines the config drops or replaces, a join step per
machine, and a step after them, wired with the resource options the etcd program uses.

Every command appends a line to the file `log` names, so the test reads the order the engine
ran them in:
- a shrink (`machines` loses some, `leaving` names them): the engine deletes what a program no
  longer registers only after the program's registrations are done, so after the leaves;
- a replacement (`generations` raises a machine's number, `replacing` names it): the machine
  has `replacement_trigger` (its generation), `delete_before_replace` and `depends_on` the
  leave step, and ignores changes to its commands, like the program's VMs; its join step has
  the same trigger. `untriggered` leaves the trigger out, as the program did before it had
  generations.
"""

import shlex

import pulumi
import pulumi_command as command

config = pulumi.Config()
log = config.require("log")
machines = config.require_object("machines")
leaving = config.get_object("leaving") or []
replacing = config.get("replacing")
generations = config.get_object("generations") or {}
# As a version of the program from before generations: no trigger at all.
untriggered = config.get_bool("untriggered") or False


def append(line: str) -> str:
    return f"sleep 1; echo {shlex.quote(line)} >> {shlex.quote(log)}"


replacement_leave = []
if replacing:
    replacement_leave = [command.local.Command(f"leave-{replacing}",
                                               create=append(f"leave {replacing}"))]
joins = []
for name in machines:
    generation = int(generations.get(name, 0))
    machine = command.local.Command(
        f"machine-{name}", create=append(f"create {name}"), delete=append(f"delete {name}"),
        opts=pulumi.ResourceOptions(
            ignore_changes=["create", "delete"], delete_before_replace=True,
            replacement_trigger=None if untriggered else generation,
            depends_on=replacement_leave if name == replacing else []))
    joins.append(command.local.Command(
        f"join-{name}", create=machine.stdout.apply(lambda _, name=name: append(f"join {name}")),
        opts=pulumi.ResourceOptions(ignore_changes=["create"], replacement_trigger=generation)))
previous: list[pulumi.Resource] = joins
for name in leaving:
    previous = [command.local.Command(f"leave-{name}", create=append(f"leave {name}"),
                                      opts=pulumi.ResourceOptions(depends_on=previous))]
command.local.Command(f"rollout-{len(machines)}", create=append(f"rollout {len(machines)}"),
                      opts=pulumi.ResourceOptions(depends_on=previous))
