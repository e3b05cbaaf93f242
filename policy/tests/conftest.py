"""Helpers for the policy tests: arguments made by hand the way the SDK makes them.

These tests run with policy/.venv's python (pulumi-policy and its protobuf pin); the main test
run starts them (tests/test_policy.py) and hands over a recording of the real program's
resources in ETCD_POLICY_PROGRAM_RUN. No test constructs a PolicyPack: it starts a gRPC server
and blocks.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

POLICY_DIR = Path(__file__).resolve().parent.parent
if str(POLICY_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_DIR))

PROGRAM_RUN_ENV = "ETCD_POLICY_PROGRAM_RUN"
STACK_URN = "urn:pulumi:dev::etcd-cluster::pulumi:pulumi:Stack::etcd-cluster-dev"
MEMBERS_URN = ("urn:pulumi:dev::etcd-cluster::etcd-cluster:index:EtcdCluster$"
               "etcd-cluster:index:DigitalOceanMembers::members")
CLUSTER_TAG = "etcd:dev:main"

# The etcd flags the program renders (cloudinit/etcd_flags.py), for hand-made user-data.
GOOD_FLAGS = [
    "--name=etcd-1",
    "--data-dir=/var/lib/etcd/data",
    "--listen-client-urls=https://0.0.0.0:2379",
    "--advertise-client-urls=https://etcd-1.main.example.com:2379",
    "--listen-peer-urls=https://0.0.0.0:2380",
    "--initial-advertise-peer-urls=https://etcd-1.main.example.com:2380",
    "--listen-metrics-urls=http://0.0.0.0:2381",
    "--cert-file=/etc/etcd/pki/server.crt",
    "--key-file=/etc/etcd/pki/server.key",
    "--trusted-ca-file=/etc/etcd/pki/ca.crt",
    "--client-cert-auth=true",
    "--peer-cert-file=/etc/etcd/pki/peer.crt",
    "--peer-key-file=/etc/etcd/pki/peer.key",
    "--peer-trusted-ca-file=/etc/etcd/pki/peer-ca.crt",
    "--peer-client-cert-auth=true",
]


class Violations(list[str]):
    """A report_violation callback that keeps the messages."""

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.append(message)


def proxied(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """Properties as the SDK's Analyze hands them to a validation: unknowns raise when read."""
    result: Mapping[str, Any] = unknown_checking_proxy(dict(props))
    return result


def options(*, protect: bool = False, ignore_changes: Iterable[str] = (),
            parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, list(ignore_changes), None, [],
                                 PolicyCustomTimeouts(0, 0, 0), [], parent)


def resource_args(resource_type: str, props: Mapping[str, Any], *, name: str = "etcd-1",
                  opts: PolicyResourceOptions | None = None,
                  config: Mapping[str, Any] | None = None) -> ResourceValidationArgs:
    urn = f"urn:pulumi:dev::etcd-cluster::{resource_type}::{name}"
    return ResourceValidationArgs(resource_type, proxied(props), urn, name, opts or options(),
                                  None, config)


def stack_args(resources: list[PolicyResource],
               config: Mapping[str, Any] | None = None) -> StackValidationArgs:
    return StackValidationArgs(resources, config)


def policy_resource(resource_type: str, name: str, props: Mapping[str, Any], *,
                    parent: str | None = MEMBERS_URN, protect: bool = True) -> PolicyResource:
    urn = f"urn:pulumi:dev::etcd-cluster::{resource_type}::{name}"
    return PolicyResource(resource_type, proxied(props), urn, name,
                          options(protect=protect, parent=parent), None, None, [], {})


def unit_text(exec_start_flags: list[str], *, extra_service: Iterable[str] = ()) -> str:
    lines = ["[Unit]", "Description=etcd", "", "[Service]", "Type=notify", "User=etcd",
             "ExecStart=/usr/local/bin/etcd " + " ".join(exec_start_flags), *extra_service,
             "", "[Install]", "WantedBy=multi-user.target"]
    return "\n".join(lines) + "\n"


def user_data(flags: list[str] | None = None, *, unit: str | None = None) -> str:
    """A cloud-config user-data that writes an etcd.service (as cloudinit/userdata.py does)."""
    document = {
        "write_files": [
            {"path": "/usr/local/sbin/etcd-install", "content": "#!/bin/sh\n", "permissions": "0755"},
            {"path": "/etc/systemd/system/etcd.service",
             "content": unit if unit is not None else unit_text(flags or GOOD_FLAGS),
             "permissions": "0644"},
        ],
        "runcmd": [["systemctl", "enable", "etcd.service"]],
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


def droplet_props(*, tags: list[str] | None = None, user_data_text: str | None = None
                  ) -> dict[str, Any]:
    return {
        "name": "etcd-1.main.example.com",
        "tags": tags if tags is not None else ["etcd", CLUSTER_TAG],
        "userData": user_data_text if user_data_text is not None else user_data(),
        "image": "debian-12-x64",
        "size": "s-2vcpu-4gb",
    }


@pytest.fixture(scope="session")
def program_run() -> dict[str, Any]:
    """The real program's resources as recorded under mocks by the main test run."""
    path = os.environ.get(PROGRAM_RUN_ENV)
    if not path:
        pytest.skip(f"{PROGRAM_RUN_ENV} is not set: these tests read the program's resources "
                    "recorded by the main test run; run them through tests/test_policy.py")
    recorded: dict[str, Any] = json.loads(Path(path).read_text())
    return recorded
