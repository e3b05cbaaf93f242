"""Reading a rendered user-data back, for tests: what a member would find on its disk."""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
from typing import Any

import yaml

from cloudinit.userdata import MEMBER_FILES_PATH


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


def archive_contents(archive: str) -> dict[str, str]:
    """path -> content of every file in a member files' archive (cloudinit/member_files.py)."""
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(archive)), mode="r:gz") as tar:
        return {f"/{entry.name}": tar.extractfile(entry).read().decode()  # type: ignore[union-attr]
                for entry in tar.getmembers() if entry.isfile()}


def installed_files(user_data: str) -> dict[str, str]:
    """path -> content of every file the member has once its first boot installed the member
    files' archive the user-data carries (etcd-install-files)."""
    return archive_contents(write_file_contents(user_data)[MEMBER_FILES_PATH])
