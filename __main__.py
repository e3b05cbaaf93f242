"""An etcd cluster for Kubernetes: read settings, build the clusters, export what consumers need."""

import pulumi

from components.config import stack_settings
from components.stack import build_clusters, stack_outputs

# Bad settings stop here, with every problem listed, before any resource is registered.
settings = stack_settings()
main_cluster, events_cluster = build_clusters(settings)
for name, value in stack_outputs(main_cluster, events_cluster).items():
    pulumi.export(name, value)
