"""Reading the raw configuration into typed values, recording every problem instead of stopping.

`Reader.value` turns what `pulumi config` stores (strings, or already-parsed values) into the
setting's kind, falling back to the default after recording a problem; the `check_*` helpers are
the validations several concerns share.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from model.settings.schema import REMOVED_SETTINGS, RENAMED_SETTINGS, SPEC_BY_KEY
from model.settings.types import PROJECT

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DO_TAG = re.compile(r"^[A-Za-z0-9:_\-]{1,255}$")


class SettingsError(ValueError):
    """Every bad setting at once, one line each: setting, value, what to do."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{lines}")


def setting_name(key: str) -> str:
    return f"{PROJECT}:{key}"


def _unknown(key: str) -> str:
    """The problem with a key the schema does not know: renamed, removed, or misspelt."""
    if key in RENAMED_SETTINGS:
        new_key, why = RENAMED_SETTINGS[key]
        return (f"{setting_name(key)} was renamed to {new_key}: {why} Move the value with "
                f"`pulumi config set {new_key} <value>` and `pulumi config rm {key}`.")
    if key in REMOVED_SETTINGS:
        return (f"{setting_name(key)} was removed: {REMOVED_SETTINGS[key]} "
                f"Remove it with `pulumi config rm {key}`.")
    return (f"{setting_name(key)} is not a setting of this program; known settings: "
            f"{', '.join(sorted(SPEC_BY_KEY))}. Remove it or fix its spelling.")


class Reader:
    """Reads raw values into typed ones, recording every problem instead of stopping at one.
    `secret_keys`: the settings stored as secrets (`pulumi config set --secret`), whose values
    no message shows."""

    def __init__(self, raw: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()) -> None:
        unknown = sorted(set(raw) - set(SPEC_BY_KEY))
        self.raw = raw
        self.secret_keys = secret_keys
        self.problems: list[str] = [_unknown(key) for key in unknown]

    def problem(self, key: str, value: Any, message: str) -> None:
        spec = SPEC_BY_KEY.get(key)
        hidden = (spec is not None and spec.secret) or key in self.secret_keys
        shown = "[secret]" if hidden and value else repr(value)
        self.problems.append(f"{setting_name(key)} = {shown}: {message}")

    def is_set(self, key: str) -> bool:
        """Did the stack set the scalar setting `key` to something other than its default? The
        engine hands the program Pulumi.yaml's default of every setting the stack leaves out
        (as the CLI writes it: `72`, `false`), so a value that reads as the default counts as
        not set."""
        raw = self.raw.get(key)
        return raw not in (None, "") and _as_written(raw) != _as_written(SPEC_BY_KEY[key].default)

    def value(self, key: str) -> Any:
        spec = SPEC_BY_KEY[key]
        value = self.raw.get(key)
        if value is None or value == "":
            return spec.default
        parse: Callable[[str, Any], Any] = {
            "str": self._str,
            "int": self._int,
            "bool": self._bool,
            "list": self._list,
        }[spec.kind]
        return parse(key, value)

    def _str(self, key: str, value: Any) -> Any:
        if not isinstance(value, str):
            self.problem(key, value, "must be a string.")
            return SPEC_BY_KEY[key].default
        return value.strip()

    def _int(self, key: str, value: Any) -> Any:
        if isinstance(value, bool):
            self.problem(key, value, "must be a whole number.")
            return SPEC_BY_KEY[key].default
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            self.problem(key, value, "must be a whole number, e.g. `pulumi config set "
                         f"{key} {SPEC_BY_KEY[key].default}`.")
            return SPEC_BY_KEY[key].default

    def _bool(self, key: str, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        self.problem(key, value, "must be true or false.")
        return SPEC_BY_KEY[key].default

    def _list(self, key: str, value: Any) -> Any:
        # `pulumi config set --path 'key[0]' x` stores a list; a plain string may hold JSON.
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                self.problem(key, value, f"must be a list, e.g. `pulumi config set --path '{key}[0]' VALUE`.")
                return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, value, "must be a list of strings.")
            return []
        return [item.strip() for item in value]


def _as_written(value: Any) -> str:
    """A scalar as the CLI writes it into a stack's configuration."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value).strip()


def check_dns_label(c: Reader, key: str, value: str, what: str) -> None:
    if not DNS_LABEL.match(value):
        c.problem(key, value, f"{what} must be a DNS label: 1-63 lowercase letters, digits and "
                  "hyphens, starting and ending with a letter or digit (e.g. `prod-etcd`).")


_PORT_OF = {
    "clientSourceCidrs": "the etcd client port 2379",
    "monitoringSourceCidrs": "the plain-HTTP metrics port 2381",
    "adminCidrs": "SSH",
    "vpcIpRange": "the VPC",
}


def check_cidrs(c: Reader, key: str, values: list[str]) -> list[str]:
    good: list[str] = []
    for value in values:
        try:
            good.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError as error:
            c.problem(key, value, f"is not a valid CIDR ({error}); write a network address with "
                      "a prefix length, e.g. 10.10.0.0/16 or 203.0.113.7/32.")
            continue
        if ipaddress.ip_network(value).prefixlen == 0:
            c.problem(key, value, f"opens {_PORT_OF[key]} to the whole internet; list the "
                      "networks that need it instead.")
    return good


def check_tags(c: Reader, key: str, values: list[str]) -> None:
    for value in values:
        if not _DO_TAG.match(value):
            c.problem(key, value, "is not a valid DigitalOcean tag: use letters, digits, "
                      "':', '-' and '_' (1-255 characters).")


def check_range(c: Reader, key: str, value: int, low: int, high: int, why: str) -> None:
    if not low <= value <= high:
        c.problem(key, value, f"must be between {low} and {high}; {why}")
