"""What kubeadm and kube-apiserver need from an etcd-cluster stack's outputs.

Pure: no Pulumi imports. YAML is written by a serializer (PyYAML), never built from strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

# kubeadm 1.31+ reads v1beta4 (v1beta3 is deprecated); the etcd.external section is the same.
# v1beta4 lists extra args as name/value pairs (v1beta3 had a map).
KUBEADM_API_VERSION = "kubeadm.k8s.io/v1beta4"
SERVERS_OVERRIDES = "etcd-servers-overrides"


@dataclass(frozen=True)
class ExternalEtcd:
    """kubeadm's `etcd.external`: where etcd is and where the client files live on each node."""

    endpoints: tuple[str, ...]
    ca_file: str
    cert_file: str
    key_file: str
    # kube-apiserver --etcd-servers-overrides (`/events#https://...;...`) when the stack runs an
    # events cluster: the same CA and client files reach it.
    servers_overrides: str | None = None


def _text(section: Mapping[str, Any], key: str) -> str:
    value = section.get(key)
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"kubeadm_external_etcd: etcd.external.{key} must be an absolute path, "
                         f"got {value!r}")
    return value


def _servers_overrides(document: Mapping[str, Any], expected: str | None) -> str | None:
    """The snippet's `apiServer.extraArgs` override, which must be the stack's own output."""
    extra_args = (document.get("apiServer") or {}).get("extraArgs") or []
    found = [arg.get("value") for arg in extra_args
             if isinstance(arg, dict) and arg.get("name") == SERVERS_OVERRIDES]
    value = found[0] if found else None
    if value != expected:
        raise ValueError(f"kubeadm_external_etcd carries {SERVERS_OVERRIDES}={value!r}, but the "
                         f"stack's etcd_servers_overrides is {expected!r}: the stack's outputs "
                         "disagree; run `pulumi up` on it")
    if value is not None and not all(
            server.startswith("https://") for server in value.split("#", 1)[-1].split(";")):
        raise ValueError(f"{SERVERS_OVERRIDES} servers must use https (mutual TLS): {value}")
    return value


def external_etcd(kubeadm_external_etcd: str, endpoints: Sequence[str],
                  servers_overrides: str | None = None) -> ExternalEtcd:
    """Read the stack's `kubeadm_external_etcd` output; it must list the stack's `endpoints`
    and carry its `etcd_servers_overrides` (None: the stack has no events cluster)."""
    document = yaml.safe_load(kubeadm_external_etcd)
    section = (document or {}).get("etcd", {}).get("external") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise ValueError("kubeadm_external_etcd has no etcd.external section: is the stack "
                         "reference pointing at an etcd-cluster stack?")
    listed = section.get("endpoints")
    if not isinstance(listed, list) or not listed:
        raise ValueError("kubeadm_external_etcd: etcd.external.endpoints is empty")
    if list(listed) != list(endpoints):
        raise ValueError(f"kubeadm_external_etcd lists {listed}, but the stack's endpoints are "
                         f"{list(endpoints)}: the stack's outputs disagree; run `pulumi up` on it")
    plain = [url for url in listed if not str(url).startswith("https://")]
    if plain:
        raise ValueError(f"etcd endpoints must use https (mutual TLS): {plain}")
    return ExternalEtcd(endpoints=tuple(listed), ca_file=_text(section, "caFile"),
                        cert_file=_text(section, "certFile"), key_file=_text(section, "keyFile"),
                        servers_overrides=_servers_overrides(document, servers_overrides))


def cluster_configuration(external: ExternalEtcd, *, kubernetes_version: str | None = None,
                          control_plane_endpoint: str | None = None) -> str:
    """A kubeadm ClusterConfiguration document using the external etcd cluster."""
    document: dict[str, Any] = {"apiVersion": KUBEADM_API_VERSION, "kind": "ClusterConfiguration"}
    if kubernetes_version:
        document["kubernetesVersion"] = kubernetes_version
    if control_plane_endpoint:
        document["controlPlaneEndpoint"] = control_plane_endpoint
    document["etcd"] = {
        "external": {
            "endpoints": list(external.endpoints),
            "caFile": external.ca_file,
            "certFile": external.cert_file,
            "keyFile": external.key_file,
        }
    }
    if external.servers_overrides is not None:
        document["apiServer"] = {"extraArgs": [
            {"name": SERVERS_OVERRIDES, "value": external.servers_overrides}]}
    return yaml.safe_dump(document, sort_keys=False)


def kube_apiserver_etcd_flags(external: ExternalEtcd, etcd_servers: str) -> list[str]:
    """kube-apiserver's etcd flags (what kubeadm sets from etcd.external, for other installers)."""
    if etcd_servers.split(",") != list(external.endpoints):
        raise ValueError(f"etcd_servers {etcd_servers!r} is not the comma list of the endpoints "
                         f"{list(external.endpoints)}")
    flags = [
        f"--etcd-servers={etcd_servers}",
        f"--etcd-cafile={external.ca_file}",
        f"--etcd-certfile={external.cert_file}",
        f"--etcd-keyfile={external.key_file}",
    ]
    if external.servers_overrides is not None:
        flags.append(f"--{SERVERS_OVERRIDES}={external.servers_overrides}")
    return flags


def pki_files(external: ExternalEtcd, ca_pem: str, cert_pem: str, key_pem: str) -> dict[str, str]:
    """Path -> content of the files each control-plane node needs (holds the client key)."""
    for what, pem, marker in (("ca_pem", ca_pem, "CERTIFICATE"),
                              ("apiserver_client_cert_pem", cert_pem, "CERTIFICATE"),
                              ("apiserver_client_key_pem", key_pem, "PRIVATE KEY")):
        lines = pem.strip().splitlines()
        if not lines or not (lines[0].startswith("-----BEGIN ") and lines[0].endswith(f"{marker}-----")):
            raise ValueError(f"{what} is not a PEM {marker}")
    return {external.ca_file: ca_pem, external.cert_file: cert_pem, external.key_file: key_pem}
