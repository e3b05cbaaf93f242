// Re-exports the TLS Terraform provider's internal provider package. The module path must sit
// under github.com/hashicorp/terraform-provider-tls/ for Go to allow importing .../internal/provider.
module github.com/hashicorp/terraform-provider-tls/shim

go 1.25.8

require (
	github.com/hashicorp/terraform-plugin-framework v1.19.0
	github.com/hashicorp/terraform-provider-tls v1.2.1-0.20260819085117-d044ca7c6f52
)
