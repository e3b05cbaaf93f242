"""Read an etcd-cluster stack and export what kubeadm and kube-apiserver need to use it."""

import kubeadm_render as render
import pulumi

config = pulumi.Config()
etcd = pulumi.StackReference("etcd", stack_name=config.require("etcdStack"))

# Present only when the etcd stack runs an events cluster (eventsCluster).
external = pulumi.Output.all(
    etcd.require_output("kubeadm_external_etcd"), etcd.require_output("endpoints"),
    etcd.get_output("etcd_servers_overrides"),
).apply(lambda values: render.external_etcd(values[0], values[1], values[2]))

pulumi.export("cluster_configuration", external.apply(lambda section: render.cluster_configuration(
    section,
    kubernetes_version=config.get("kubernetesVersion") or None,
    control_plane_endpoint=config.get("controlPlaneEndpoint") or None,
)))
pulumi.export("kube_apiserver_etcd_flags", pulumi.Output.all(
    external, etcd.require_output("etcd_servers"),
).apply(lambda values: render.kube_apiserver_etcd_flags(values[0], values[1])))
# The client key is a secret in the etcd stack and stays one here.
pulumi.export("etcd_pki_files", pulumi.Output.secret(pulumi.Output.all(
    external,
    etcd.require_output("ca_pem"),
    etcd.require_output("apiserver_client_cert_pem"),
    etcd.require_output("apiserver_client_key_pem"),
).apply(lambda values: render.pki_files(*values))))
