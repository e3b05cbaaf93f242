// Command pulumi-tfgen-tls generates the Pulumi schema of the TLS provider:
//
//	TLS_UPSTREAM_REPO=DIR pulumi-tfgen-tls schema --out OUT
//
// writes OUT/schema.json and OUT/bridge-metadata.json. TLS_UPSTREAM_REPO is the directory of the
// terraform-provider-tls module (its docs/ give the schema's descriptions); ./build sets it.
package main

import (
	"os"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	tlsprovider "toolchain.invalid/provider-tls"
)

func main() {
	info := tlsprovider.Provider(nil)
	info.UpstreamRepoPath = os.Getenv("TLS_UPSTREAM_REPO")
	tfgen.Main("tls", info)
}
