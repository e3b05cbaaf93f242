"""The policy pack `pulumi preview --policy-pack policy` runs. It only builds the PolicyPack
(which serves the policies to the engine and blocks); the policies are in etcd_policies.py."""

from etcd_policies import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name="etcd-cluster-guard-rails", policies=POLICIES)
