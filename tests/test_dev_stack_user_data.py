"""What a member of the committed `dev` stack receives, checked in whole as a readable file.

`tests/data/user-data/dev-stack-etcd-1.yaml` is the user-data the program hands droplet etcd-1
of `Pulumi.dev.yaml` (with the zone a user sets), rendered by the program itself under mocks.
Certificates and keys are random per run, so each PEM document is replaced by a placeholder
naming its file; everything else is byte for byte what the droplet gets. A change to what
members receive shows as a diff of that file in review. Rewrite it only for a change you meant:
  ETCD_WRITE_USER_DATA_DOCUMENTS=1 .venv/bin/python -m pytest tests/test_dev_stack_user_data.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from program import ProgramRun
from test_project_file import dev_stack_settings

from cloudinit.userdata import render_document

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "tests" / "data" / "user-data" / "dev-stack-etcd-1.yaml"
# What a user sets before the first `pulumi up` (Pulumi.dev.yaml says so): a stand-in zone.
USERS_ZONE = {"dnsZone": "k8s.example.net", "cloudflareZoneId": "f" * 32}


def with_placeholder_pems(user_data: str) -> str:
    document: dict[str, Any] = yaml.safe_load(user_data)
    for entry in document["write_files"]:
        content = entry["content"]
        if content.startswith("-----BEGIN "):
            kind = content.splitlines()[0].removeprefix("-----BEGIN ").removesuffix("-----")
            entry["content"] = (f"-----BEGIN {kind}-----\nplaceholder for {entry['path']}\n"
                                f"-----END {kind}-----\n")
    return render_document(document)


def test_the_dev_stacks_first_member_receives_the_checked_in_user_data(program: Any) -> None:
    run: ProgramRun = program({**dev_stack_settings(), **USERS_ZONE}, "dev", base=False)
    text = with_placeholder_pems(run.user_data["etcd-1"])
    if os.environ.get("ETCD_WRITE_USER_DATA_DOCUMENTS") == "1":
        DOCUMENT.write_text(text)
    assert text == DOCUMENT.read_text(), (
        f"etcd-1 of the dev stack now receives other user-data than {DOCUMENT.relative_to(ROOT)}")


def test_only_certificates_and_keys_are_replaced_in_the_checked_in_document() -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    replaced = sorted(entry["path"] for entry in document["write_files"]
                      if entry["content"].startswith("-----BEGIN "))
    assert replaced == sorted([
        "/etc/etcd/pki/ca.crt", "/etc/etcd/pki/peer-ca.crt",
        "/etc/etcd/pki/server.crt", "/etc/etcd/pki/server.key",
        "/etc/etcd/pki/peer.crt", "/etc/etcd/pki/peer.key",
        "/etc/etcd/pki/healthcheck-client.crt", "/etc/etcd/pki/healthcheck-client.key",
    ])
