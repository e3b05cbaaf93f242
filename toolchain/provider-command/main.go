// Command pulumi-resource-command is a small stand-in for the Pulumi Command provider
// (github.com/pulumi/pulumi-command), whose Go module is not available on the build machine.
//
// It implements command:local:Command, command:remote:Command (over SSH) and the
// command:local:run function with the semantics of upstream v1.2.1, so the pulumi-command
// Python SDK (1.2.1) drives it unchanged. command:remote:CopyToRemote and CopyFile are not
// implemented.
package main

import (
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// providerName is the package name the engine and the SDK use ("command:local:Command").
const providerName = "command"

// version must equal the SDK's version: the engine loads the plugin by the version the SDK
// asks for. Set it at build time: -ldflags "-X main.version=1.2.1".
var version = "1.2.1"

func main() {
	err := provider.Main(providerName, func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		// host is nil when the engine attaches to an already running provider; Attach sets it.
		s := newServer()
		if host != nil {
			s.setHost(host)
		}
		return s, nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
