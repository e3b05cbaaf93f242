// Package shim exposes the TLS Terraform provider (a terraform-plugin-framework provider) to the
// Pulumi bridge; the provider lives in an internal package of the upstream module.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"

	upstream "github.com/hashicorp/terraform-provider-tls/internal/provider"
)

// NewProvider returns a fresh instance of the upstream TLS provider.
func NewProvider() provider.Provider { return upstream.New() }
