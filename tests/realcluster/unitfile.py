"""Read a systemd service unit the way systemd would, and move its paths under a test root.

Only what the generated etcd unit uses is supported; anything else in a command line (a prefix
such as `-` or `+`, quoting, `$VAR`, `%` specifiers) raises instead of being guessed at, so a
change to the unit that this harness cannot run faithfully fails loudly.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# systemd's default search path for services (what ExecStart= sees as PATH).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Unit:
    sections: dict[str, list[tuple[str, str]]]

    def values(self, section: str, key: str) -> list[str]:
        return [value for name, value in self.sections.get(section, []) if name == key]

    def value(self, section: str, key: str, default: str | None = None) -> str | None:
        found = self.values(section, key)
        return found[-1] if found else default


def parse_unit(text: str) -> Unit:
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            raise ValueError(f"unit line {number}: continuation lines are not supported: {raw!r}")
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        if current is None or "=" not in line:
            raise ValueError(f"unit line {number} is not `Key=value` in a section: {raw!r}")
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return Unit(sections)


def environment_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads an EnvironmentFile= (comments and blanks skipped); the
    quoting and continuation rules systemd also has are refused, not guessed at."""
    found = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, equals, value = line.partition("=")
        if not equals or any(char in line for char in "\"'\\"):
            raise ValueError(f"environment file line {number} is not a plain KEY=value: {raw!r}")
        found[key.strip()] = value.strip()
    return found


def command_line(value: str) -> list[str]:
    """Split an Exec*= value into argv; refuse what systemd would treat specially."""
    if value[:1] in "-@:+!":
        raise ValueError(f"Exec prefix {value[0]!r} not supported by the harness: {value!r}")
    if any(char in value for char in "\"'\\$%;"):
        raise ValueError(f"Exec line needs systemd quoting/expansion rules: {value!r}")
    argv = shlex.split(value)
    if not argv or not argv[0].startswith("/"):
        raise ValueError(f"Exec line must start with an absolute path: {value!r}")
    return argv


@dataclass(frozen=True)
class Service:
    """What systemd does to start the service, as data."""

    type: str
    user: str
    group: str
    exec_start_pre: tuple[tuple[str, ...], ...]
    exec_start: tuple[str, ...]
    limit_nofile: int | None
    umask: int
    no_new_privileges: bool
    capability_bounding_set_empty: bool
    io_class: str | None
    io_priority: str | None

    def remapped(self, remap: Callable[[str], str]) -> Service:
        def argv(args: Sequence[str]) -> tuple[str, ...]:
            return tuple(remap_argument(arg, remap) for arg in args)
        return Service(
            type=self.type, user=self.user, group=self.group,
            exec_start_pre=tuple(argv(pre) for pre in self.exec_start_pre),
            exec_start=argv(self.exec_start),
            limit_nofile=self.limit_nofile, umask=self.umask,
            no_new_privileges=self.no_new_privileges,
            capability_bounding_set_empty=self.capability_bounding_set_empty,
            io_class=self.io_class, io_priority=self.io_priority,
        )


def service_of(unit: Unit) -> Service:
    def one(key: str, default: str | None = None) -> str | None:
        return unit.value("Service", key, default)

    starts = unit.values("Service", "ExecStart")
    if len(starts) != 1:
        raise ValueError(f"want exactly one ExecStart=, found {len(starts)}")
    limit = one("LimitNOFILE")
    if limit is not None and ":" in limit:
        raise ValueError(f"LimitNOFILE soft:hard not supported: {limit}")
    capabilities = one("CapabilityBoundingSet")
    return Service(
        type=one("Type", "simple") or "simple",
        user=one("User", "root") or "root",
        group=one("Group") or one("User", "root") or "root",
        exec_start_pre=tuple(tuple(command_line(pre)) for pre in unit.values("Service", "ExecStartPre")),
        exec_start=tuple(command_line(starts[0])),
        limit_nofile=int(limit) if limit else None,
        umask=int(one("UMask", "0022") or "0022", 8),
        no_new_privileges=(one("NoNewPrivileges", "no") or "no") in ("yes", "true", "1", "on"),
        capability_bounding_set_empty=capabilities == "",
        io_class=one("IOSchedulingClass"),
        io_priority=one("IOSchedulingPriority"),
    )


def prefix_remapper(root: str, prefixes: Sequence[str]) -> Callable[[str], str]:
    """A path function: paths at or below one of `prefixes` move under `root`."""
    def remap(path: str) -> str:
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return root.rstrip("/") + path
        return path
    return remap


def remap_argument(argument: str, remap: Callable[[str], str]) -> str:
    """An argument that is a path, or a `--flag=path`, with its path remapped."""
    if argument.startswith("/"):
        return remap(argument)
    if argument.startswith("--") and "=" in argument:
        flag, value = argument.split("=", 1)
        if value.startswith("/"):
            return f"{flag}={remap(value)}"
    return argument


def paths_in(argv: Sequence[str]) -> list[str]:
    """Every absolute path an argv names (as an argument or a `--flag=` value)."""
    found = []
    for argument in argv:
        value = argument.split("=", 1)[1] if argument.startswith("--") and "=" in argument else argument
        if value.startswith("/"):
            found.append(value)
    return found
