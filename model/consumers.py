"""What consumers of the stack get: kubeadm's external etcd section and an etcdctl environment.

Pure: no Pulumi imports.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

import yaml

# Where kubeadm expects the files (its defaults for external etcd).
KUBEADM_CA_FILE = "/etc/kubernetes/pki/etcd/ca.crt"
KUBEADM_CERT_FILE = "/etc/kubernetes/pki/apiserver-etcd-client.crt"
KUBEADM_KEY_FILE = "/etc/kubernetes/pki/apiserver-etcd-client.key"


# kube-apiserver keeps events (core group, resource `events`) apart with this override.
EVENTS_RESOURCE = "/events"
SERVERS_OVERRIDES_FLAG = "etcd-servers-overrides"


def etcd_servers_overrides(events_client_urls: Sequence[str]) -> str:
    """kube-apiserver `--etcd-servers-overrides` for an events cluster.

    The format is `group/resource#servers` with the servers separated by `;` (a `,` separates
    overrides); events are in the core group, whose name is empty: `/events#https://...;...`.
    """
    return f"{EVENTS_RESOURCE}#{';'.join(events_client_urls)}"


def kubeadm_external_etcd(endpoints: Sequence[str], servers_overrides: str | None = None) -> str:
    """The parts of a kubeadm `ClusterConfiguration` (v1beta4) that point it at this stack.

    `etcd.external` for the main cluster; with an events cluster also `apiServer.extraArgs`
    carrying `--etcd-servers-overrides` (v1beta4 lists extra args as name/value pairs). The
    events cluster needs no files of its own: its server certificates chain to the same CA and
    accept the same client certificate.
    """
    section: dict[str, object] = {
        "etcd": {
            "external": {
                "endpoints": list(endpoints),
                "caFile": KUBEADM_CA_FILE,
                "certFile": KUBEADM_CERT_FILE,
                "keyFile": KUBEADM_KEY_FILE,
            }
        }
    }
    if servers_overrides is not None:
        section["apiServer"] = {
            "extraArgs": [{"name": SERVERS_OVERRIDES_FLAG, "value": servers_overrides}],
        }
    return yaml.safe_dump(section, sort_keys=False)


def etcdctl_variables(endpoints: Sequence[str], ca_file: str, cert_file: str,
                      key_file: str) -> dict[str, str]:
    """The ETCDCTL_* variables that point etcdctl at the cluster with a client certificate.
    No ETCDCTL_API: v3 is the default since etcdctl 3.4, and etcdctl 3.6 warns about it."""
    return {
        "ETCDCTL_ENDPOINTS": ",".join(endpoints),
        "ETCDCTL_CACERT": ca_file,
        "ETCDCTL_CERT": cert_file,
        "ETCDCTL_KEY": key_file,
    }


def etcdctl_env(cluster: str, endpoints: Sequence[str], ca_pem: str, cert_pem: str,
                key_pem: str) -> str:
    """A shell snippet for operators: writes the operator client files and exports ETCDCTL_*.

    It holds a private key, so the stack exports it as a secret. Use:
    `pulumi stack output etcdctl_env --show-secrets > etcd.sh && . ./etcd.sh`.
    """
    directory = f"${{HOME}}/.config/etcd/{cluster}"
    files = {"ca.crt": ca_pem, "operator.crt": cert_pem, "operator.key": key_pem}
    # The files are written in a subshell: its umask keeps the key private without changing
    # the umask of the shell that sources the snippet.
    lines = ["(", "  set -e", "  umask 077", f'  mkdir -p "{directory}"']
    for name, content in files.items():
        lines.append(f'  printf %s {shlex.quote(content)} > "{directory}/{name}"')
    lines.append(")")
    exports = etcdctl_variables(endpoints, f"{directory}/ca.crt", f"{directory}/operator.crt",
                                f"{directory}/operator.key")
    lines += [f'export {name}="{value}"' for name, value in exports.items()]
    return "\n".join(lines) + "\n"
