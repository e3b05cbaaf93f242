"""Shell blocks of README.md, run as written (the documentation is what operators will paste)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
RESTORE_MARKER = "<!-- restore-procedure -->"


def marked_block(marker: str, readme: Path = README) -> str:
    """The ```sh block right after `marker` (dedented as it appears inside a list item)."""
    text = readme.read_text()
    at = text.find(marker)
    if at < 0:
        raise ValueError(f"{readme} has no {marker}")
    found = re.match(r"\s*```sh\n(.*?)\n[ \t]*```", text[at + len(marker):], re.DOTALL)
    if not found:
        raise ValueError(f"no ```sh block right after {marker} in {readme}")
    return textwrap.dedent(found.group(1)) + "\n"


def restore_procedure(line: str) -> str:
    """The README's restore block; for etcd 3.4 with `etcdutl` replaced by `etcdctl`, as the
    README tells 3.4 users to do."""
    block = marked_block(RESTORE_MARKER)
    if "etcdutl" not in block:
        raise ValueError("the restore block no longer runs etcdutl; update the harness")
    if line == "3.4":
        return re.sub(r"\betcdutl\b", "etcdctl", block)
    return block


def snapshot_save_line(readme: Path = README) -> str:
    """The `[VAR=value ...] etcdctl ... snapshot save ...` line of README's backup instructions."""
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", readme.read_text(), re.DOTALL)
    for block in blocks:
        for line in block.splitlines():
            if re.match(r"\s*([A-Z_]+=\S+\s+)*etcdctl .*snapshot save", line):
                return line.strip()
    raise ValueError(f"no `etcdctl ... snapshot save` line in {readme}")
