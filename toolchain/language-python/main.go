// Command pulumi-language-python is the engine's Python language host, built by this project.
//
// Pulumi publishes its own language host only as a pseudo-version of a commit, and the module
// proxy these machines use does not serve it; the libraries it is made of (the Python toolchain
// helpers, the policy-pack proxy, the gRPC protocol) are in the sdk/v3 module, which is served.
// This host wires those libraries to the LanguageRuntime protocol for what this project runs:
// Python programs (preview, up, destroy) and Python policy packs. Code generation, packing and
// debugging are not offered.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// version is stamped at build time (-ldflags -X main.version=...), equal to the CLI's version.
var version = "0.0.0-dev"

// The executor is the Python script of the SDK that runs a program; it sits beside this binary.
const executorName = "pulumi-language-python-exec"

// How often the host checks that the engine that started it is still there.
const healthcheckInterval = 5 * time.Minute

func main() {
	showVersion := flag.Bool("version", false, "print the plugin version and exit")
	flag.String("tracing", "", "ignored: tracing is not supported by this host")
	executor := flag.String("use-executor", "", "run programs with this executor instead of the one beside the binary")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	logging.InitLogging(false, 0, false)

	exec := *executor
	if exec == "" {
		self, err := os.Executable()
		if err != nil {
			cmdutil.Exit(fmt.Errorf("could not locate this binary: %w", err))
		}
		exec = filepath.Join(filepath.Dir(self), executorName)
		if _, err := os.Stat(exec); err != nil {
			cmdutil.Exit(fmt.Errorf("missing executor %s: %w", exec, err))
		}
	}

	// The engine passes its address as the only argument; without it, Handshake supplies it.
	engineAddress := flag.Arg(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cancel := make(chan bool)
	go func() {
		<-ctx.Done()
		close(cancel)
	}()
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, healthcheckInterval, stop); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start the engine health check: %w", err))
		}
	}

	host := newHost(exec, engineAddress)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start the language host: %w", err))
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host stopped serving: %w", err))
	}
}
