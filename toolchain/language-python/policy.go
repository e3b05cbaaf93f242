package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// RunPlugin runs a Python policy pack (`pulumi preview --policy-pack DIR`): `python -m
// pulumi.policy` in the pack's own virtualenv, behind the SDK's proxy, which first takes the
// stack's configuration from the engine and hands it to the pack in its environment.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	if req.Kind != string(apitype.AnalyzerPlugin) {
		return fmt.Errorf("this language host runs Python policy packs only, not %s plugins", req.Kind)
	}
	ctx := server.Context()
	tc, err := resolveToolchain(req.Info, false)
	if err != nil {
		return err
	}
	args := append([]string{"-u", "-m", "pulumi.policy"}, req.Args...)
	cmd, err := tc.Command(ctx, append(args, req.Info.ProgramDirectory)...)
	if err != nil {
		return err
	}
	// Packs have always run from their own directory.
	cmd.Dir = req.Info.ProgramDirectory

	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	proxy, stdout, err := sdk.NewPolicyProxy(ctx, stdout)
	if err != nil {
		return fmt.Errorf("could not start the policy pack proxy: %w", err)
	}
	config, err := proxy.AwaitConfiguration(ctx)
	if err != nil {
		return fmt.Errorf("could not get the stack configuration: %w", err)
	}
	if config != nil {
		env, err := stackEnvironment(config)
		if err != nil {
			return err
		}
		cmd.Env = append(cmd.Env, env...)
	}
	cmd.Env = append(cmd.Env, req.Env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr

	if err := cmd.Start(); err != nil {
		return fmt.Errorf("could not start the policy pack: %w", err)
	}
	// Attach serves the engine's analyzer calls through the pack until it exits.
	if err := proxy.Attach(ctx, cmd); err != nil {
		if code, exited := exitCode(err); exited {
			return server.Send(&pulumirpc.RunPluginResponse{
				Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}, //nolint:gosec // an exit code fits
			})
		}
		return fmt.Errorf("could not attach the policy pack: %w", err)
	}
	return closer.Close()
}

// stackEnvironment is what pulumi.policy reads to know the stack it checks.
func stackEnvironment(config *pulumirpc.AnalyzerStackConfigureRequest) ([]string, error) {
	var env []string
	add := func(name, value string) {
		if value != "" {
			env = append(env, name+"="+value)
		}
	}
	add("PULUMI_ORGANIZATION", config.Organization)
	add("PULUMI_PROJECT", config.Project)
	add("PULUMI_STACK", config.Stack)
	add("PULUMI_DRY_RUN", strconv.FormatBool(config.DryRun))
	if config.Config != nil {
		values, err := json.Marshal(config.Config)
		if err != nil {
			return nil, errors.New("could not serialize the stack configuration for the policy pack")
		}
		add("PULUMI_CONFIG", string(values))
	}
	return env, nil
}
