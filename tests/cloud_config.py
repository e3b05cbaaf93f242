"""Reading a rendered user-data back, for tests: what a member would find on its disk."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import yaml


def file_content(entry: dict[str, Any]) -> str:
    """What cloud-init writes for one `write_files` entry (decoding gz+b64 as it does)."""
    encoding = entry.get("encoding", "text/plain")
    if encoding == "text/plain":
        return str(entry["content"])
    if encoding == "gz+b64":
        return gzip.decompress(base64.b64decode(entry["content"])).decode()
    raise ValueError(f"{entry['path']}: encoding {encoding!r} is not one the program uses")


def write_file_contents(user_data: str) -> dict[str, str]:
    """path -> content of every file a rendered user-data writes."""
    document = yaml.safe_load(user_data)
    return {entry["path"]: file_content(entry) for entry in document.get("write_files", [])}
