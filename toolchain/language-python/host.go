package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The Python SDK exits with this code after it has shown the user an actionable message
// (for example this project's settings errors): the engine must not add its own on top.
const exitAfterUserMessage = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	executor      string
	engineAddress string
	// Cancelled by the engine's Cancel call: running programs get an interrupt.
	cancelled context.Context
	cancel    context.CancelFunc
}

func newHost(executor, engineAddress string) *host {
	ctx, cancel := context.WithCancel(context.Background())
	return &host{executor: executor, engineAddress: engineAddress, cancelled: ctx, cancel: cancel}
}

func (h *host) Handshake(ctx context.Context,
	req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.EngineAddress
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancel()
	return &emptypb.Empty{}, nil
}

// GetRequiredPackages names the provider plugins of the Pulumi packages installed in the
// program's virtualenv, each at its SDK's version: the engine loads exactly those.
func (h *host) GetRequiredPackages(ctx context.Context,
	req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	tc, err := resolveToolchain(req.Info, false)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	packages, err := requiredPackages(ctx, tc)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

func (h *host) GetRequiredPlugins(context.Context,
	*pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "GetRequiredPlugins is replaced by GetRequiredPackages")
}

func (h *host) GetProgramDependencies(ctx context.Context,
	req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := resolveToolchain(req.Info, false)
	if err != nil {
		return nil, err
	}
	installed, err := tc.ListPackages(ctx, req.TransitiveDependencies)
	if err != nil {
		return nil, fmt.Errorf("listing the program's Python packages: %w", err)
	}
	deps := make([]*pulumirpc.DependencyInfo, 0, len(installed))
	for _, dep := range installed {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: dep.Name, Version: dep.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := resolveToolchain(req.GetInfo(), false)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
	}, nil
}

// InstallDependencies creates the virtualenv and installs requirements.txt into it, as
// `pulumi install` and a first `pulumi up` expect.
func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	tc, err := resolveToolchain(req.Info, req.IsPlugin)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.IsTerminal)
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := tc.InstallDependencies(server.Context(), req.Info.ProgramDirectory,
		req.UseLanguageVersionTools, true, stdout, stderr); err != nil {
		return err
	}
	return closer.Close()
}

// Run runs the program through the SDK's executor, with the stack's configuration in the
// environment variables the SDK reads.
func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if h.engineAddress == "" {
		return nil, errors.New("the engine must call Handshake before Run")
	}
	tc, err := resolveToolchain(req.Info, false)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	// The SDK reads PULUMI_CONFIG as an object: a stack without config is {}, never null.
	values := req.GetConfig()
	if values == nil {
		values = map[string]string{}
	}
	config, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("serializing the configuration: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("serializing the secret configuration keys: %w", err)
	}

	// Stop the program when the engine cancels or the request ends.
	runCtx, stop := context.WithCancel(h.cancelled)
	defer stop()
	context.AfterFunc(ctx, stop)
	cmd, err := tc.Command(runCtx, append([]string{h.executor}, h.executorArgs(req)...)...)
	if err != nil {
		return nil, err
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeysJSON))

	if err := cmd.Run(); err != nil {
		// The program's own output is on stderr already; make sure it is flushed before the
		// engine prints its summary.
		_ = os.Stdout.Sync()
		_ = os.Stderr.Sync()
		code, exited := exitCode(err)
		switch {
		case exited && code == exitAfterUserMessage:
			return &pulumirpc.RunResponse{Bail: true}, nil
		case exited:
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d", code)}, nil
		default:
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Python executor: %v", err)}, nil
		}
	}
	return &pulumirpc.RunResponse{}, nil
}

// executorArgs are the flags pulumi-language-python-exec parses, then the entry point.
func (h *host) executorArgs(req *pulumirpc.RunRequest) []string {
	var args []string
	add := func(flag, value string) {
		if value != "" {
			args = append(args, "--"+flag, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("root_directory", req.GetInfo().GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("organization", req.GetOrganization())
	args = append(args, req.GetInfo().GetEntryPoint())
	return append(args, req.GetArgs()...)
}

func exitCode(err error) (int, bool) {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return 0, false
	}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Exited() {
		return ws.ExitStatus(), true
	}
	return exitErr.ExitCode(), true
}

// resolveToolchain reads the runtime options of Pulumi.yaml (or PulumiPolicy.yaml).
func resolveToolchain(info *pulumirpc.ProgramInfo, isPlugin bool) (toolchain.Toolchain, error) {
	opts, err := pythonOptions(info, isPlugin)
	if err != nil {
		return nil, err
	}
	return toolchain.ResolveToolchain(opts)
}

func pythonOptions(info *pulumirpc.ProgramInfo, isPlugin bool) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Toolchain:  toolchain.Pip,
	}
	options := info.GetOptions().AsMap()
	if value, ok := options["virtualenv"]; ok {
		venv, isString := value.(string)
		if !isString {
			return opts, errors.New("runtime option virtualenv must be a string")
		}
		opts.Virtualenv = venv
	}
	if value, ok := options["toolchain"]; ok && value != "pip" {
		return opts, fmt.Errorf("runtime option toolchain: %v is not supported by this language host (only pip)", value)
	}
	if value, ok := options["typechecker"]; ok {
		return opts, fmt.Errorf("runtime option typechecker: %v is not supported by this language host", value)
	}
	// A plugin (not a program) never runs in the ambient Python: it gets a venv of its own.
	if isPlugin && opts.Virtualenv == "" {
		opts.Virtualenv = "venv"
	}
	return opts, nil
}
