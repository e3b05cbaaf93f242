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


def kubeadm_external_etcd(endpoints: Sequence[str]) -> str:
    """The `etcd:` section of a kubeadm `ClusterConfiguration` for this cluster."""
    section = {
        "etcd": {
            "external": {
                "endpoints": list(endpoints),
                "caFile": KUBEADM_CA_FILE,
                "certFile": KUBEADM_CERT_FILE,
                "keyFile": KUBEADM_KEY_FILE,
            }
        }
    }
    return yaml.safe_dump(section, sort_keys=False)


def etcdctl_variables(endpoints: Sequence[str], ca_file: str, cert_file: str,
                      key_file: str) -> dict[str, str]:
    """The ETCDCTL_* variables that point etcdctl at the cluster with a client certificate."""
    return {
        "ETCDCTL_API": "3",
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
