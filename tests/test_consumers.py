"""What consumers read: kubeadm's external etcd section and the operator's etcdctl snippet."""

from __future__ import annotations

import os
import subprocess

import yaml

from model.consumers import etcdctl_env, kubeadm_external_etcd

ENDPOINTS = ["https://etcd-1.dev.example.com:2379", "https://etcd-2.dev.example.com:2379"]


def test_kubeadm_section_is_a_cluster_configuration_external_etcd() -> None:
    section = yaml.safe_load(kubeadm_external_etcd(ENDPOINTS))
    assert section == {"etcd": {"external": {
        "endpoints": ENDPOINTS,
        "caFile": "/etc/kubernetes/pki/etcd/ca.crt",
        "certFile": "/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "keyFile": "/etc/kubernetes/pki/apiserver-etcd-client.key",
    }}}


def test_etcdctl_snippet_writes_the_files_and_exports_the_variables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    snippet = etcdctl_env("dev", ENDPOINTS, "CA'\n", "CERT$(x)\n", "KEY`y`\n")
    script = tmp_path / "etcd.sh"
    script.write_text(snippet + 'env | grep ^ETCDCTL_ | sort\n')
    result = subprocess.run(["sh", str(script)], env={**os.environ, "HOME": str(tmp_path)},
                            capture_output=True, text=True, check=True)
    directory = tmp_path / ".config/etcd/dev"
    # Contents arrive byte for byte: quoting keeps shell syntax in PEM text inert.
    assert (directory / "ca.crt").read_text() == "CA'\n"
    assert (directory / "operator.crt").read_text() == "CERT$(x)\n"
    assert (directory / "operator.key").read_text() == "KEY`y`\n"
    assert oct((directory / "operator.key").stat().st_mode & 0o777) == "0o600"
    assert f"ETCDCTL_ENDPOINTS={','.join(ENDPOINTS)}" in result.stdout.splitlines()
    assert f"ETCDCTL_KEY={directory}/operator.key" in result.stdout.splitlines()


def test_sourcing_the_etcdctl_snippet_leaves_the_shells_umask_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    snippet = tmp_path / "etcd.sh"
    snippet.write_text(etcdctl_env("dev", ENDPOINTS, "CA\n", "CERT\n", "KEY\n"))
    result = subprocess.run(["sh", "-c", 'umask 022; . "$1"; umask', "sh", str(snippet)],
                            env={**os.environ, "HOME": str(tmp_path)},
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0022"
    assert oct((tmp_path / ".config/etcd/dev/operator.key").stat().st_mode & 0o777) == "0o600"
