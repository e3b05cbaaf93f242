"""What the stack's last update recorded: its own outputs, read back at the start of the run.

The engine's builtin `readStackOutputs` answers with the stack's last stored outputs, as plain
values, before any resource is registered (so the program can refuse a change at preview). The
answer holds secret outputs in clear text: callers take the member names and nothing else, and
never log the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import invoke

READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"


def recorded_outputs() -> Mapping[str, Any]:
    """This stack's outputs as its last update left them; empty for a stack never updated."""
    name = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    answer = invoke(READ_STACK_OUTPUTS, {"name": name}).value or {}
    outputs = answer.get("outputs")
    return outputs if isinstance(outputs, Mapping) else {}
