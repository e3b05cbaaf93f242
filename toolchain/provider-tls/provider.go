// Package tlsprovider holds the Pulumi bridge configuration (ProviderInfo) for the TLS provider:
// it maps the Terraform provider "tls" (hashicorp/terraform-provider-tls, a Plugin Framework
// provider) onto the Pulumi package "tls", with every token in the single module "index"
// (tls_private_key -> tls:index/privateKey:PrivateKey, tls_public_key -> tls:index/getPublicKey:getPublicKey, ...).
package tlsprovider

import (
	"github.com/hashicorp/terraform-provider-tls/shim"
	pfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Version is the plugin version, stamped at link time:
// -ldflags "-X toolchain.invalid/provider-tls.Version=5.6.2".
var Version = "0.0.0-dev"

// Provider returns the bridge configuration. metadata is the bridge metadata JSON written by tfgen
// (bridge-metadata.json); tfgen itself starts from empty metadata.
func Provider(metadata []byte) tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:            pfbridge.ShimProvider(shim.NewProvider()),
		Name:         "tls",
		Version:      Version,
		Description:  "A Pulumi package to create TLS resources in Pulumi programs.",
		Keywords:     []string{"pulumi", "tls"},
		License:      "Apache-2.0",
		Homepage:     "https://pulumi.io",
		Repository:   "https://github.com/pulumi/pulumi-tls",
		GitHubOrg:    "hashicorp",
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		Resources: map[string]*tfbridge.ResourceInfo{
			"tls_self_signed_cert": {PreStateUpgradeHook: upgradeSDKv2SelfSignedCertState},
		},
		Python: &tfbridge.PythonInfo{RespectSchemaVersion: true},
		// Runtime behaviour as in the published pulumi-tls provider.
		EnableZeroDefaultSchemaVersion: true,
		EnableAccurateBridgePreview:    true,
	}
	info.MustComputeTokens(tokens.SingleModule("tls_", "index", tokens.MakeStandard("tls")))
	return info
}

// upgradeSDKv2SelfSignedCertState normalises SelfSignedCert state written by the old SDKv2-based
// provider (schema version 0) to what the Plugin Framework provider produces, so that refreshing
// or updating such a resource does not show spurious diffs.
func upgradeSDKv2SelfSignedCertState(
	args tfbridge.PreStateUpgradeHookArgs,
) (int64, resource.PropertyMap, error) {
	state := args.PriorState
	if args.PriorStateSchemaVersion != 0 || args.ResourceSchemaVersion != 0 || state == nil {
		return args.PriorStateSchemaVersion, state, nil
	}
	// Optional+computed flags that SDKv2 left out of state when false.
	for _, flag := range []resource.PropertyKey{"isCaCertificate", "setAuthorityKeyId", "setSubjectKeyId"} {
		if _, present := state[flag]; !present {
			state[flag] = resource.NewBoolProperty(false)
		}
	}
	// allowedUses is required; SDKv2 state may lack it.
	if _, present := state["allowedUses"]; !present {
		state["allowedUses"] = resource.NewArrayProperty(nil)
	}
	// SDKv2 stored unset subject fields as "" and [], which the framework treats as set values.
	if subject, ok := state["subject"]; ok && subject.IsObject() {
		fields := subject.ObjectValue()
		for key, value := range fields {
			switch {
			case value.IsString() && value.StringValue() == "":
				delete(fields, key)
			case key == "streetAddresses" && value.IsArray() && len(value.ArrayValue()) == 0:
				delete(fields, key)
			}
		}
	}
	return 0, state, nil
}
