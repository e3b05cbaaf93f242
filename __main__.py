"""An etcd cluster for Kubernetes: read settings, build the cluster, export what consumers need."""

import pulumi

from components.cluster import EtcdCluster
from components.config import stack_settings

# Bad settings stop here, with every problem listed, before any resource is registered.
settings = stack_settings()
cluster = EtcdCluster(settings.cluster_name, settings)
for name, value in cluster.outputs.items():
    pulumi.export(name, value)
