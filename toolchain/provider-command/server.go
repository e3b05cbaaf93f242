package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The tokens this provider implements.
const (
	localCommandType  = "command:local:Command"
	remoteCommandType = "command:remote:Command"
	localRunFunction  = "command:local:run"
)

// secretStdout, set at build time with -ldflags "-X main.secretStdout=true", makes stdout
// and stderr secret whenever any input is secret. The default follows upstream: only the
// echoed inputs keep their own secretness, and stdout/stderr stay plain (upstream's docs:
// mark them with additionalSecretOutputs if a command may print secrets).
var secretStdout = "false"

// server is the ResourceProvider gRPC service.
type server struct {
	pulumirpc.UnimplementedResourceProviderServer

	mu   sync.Mutex
	host logSink

	// cancelled is done once the engine calls Cancel: running commands are killed.
	cancelled context.Context
	cancel    context.CancelFunc

	// secretOutputs is secretStdout, parsed; a field so tests can set it.
	secretOutputs bool
}

func newServer() *server {
	ctx, cancel := context.WithCancel(context.Background())
	return &server{cancelled: ctx, cancel: cancel, secretOutputs: secretStdout == "true"}
}

func (s *server) setHost(h logSink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.host = h
}

func (s *server) logger(ctx context.Context, urn resource.URN) func(string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return statusLogger(ctx, s.host, urn)
}

// diagnostic sends msg to the engine as a message of urn that stays in the output (unlike
// the status lines of logger).
func (s *server) diagnostic(ctx context.Context, urn resource.URN, sev diag.Severity, msg string) {
	s.mu.Lock()
	host := s.host
	s.mu.Unlock()
	if host != nil {
		// A message that cannot be delivered must not fail the command.
		_ = host.Log(ctx, sev, urn, msg)
	}
}

// operation is the context a command runs under: it ends with the request or on Cancel.
func (s *server) operation(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.cancelled, cancel)
	return ctx, func() { stop(); cancel() }
}

// Attach is how the engine connects to a provider it did not start (PULUMI_DEBUG_PROVIDERS).
func (s *server) Attach(_ context.Context, req *pulumirpc.PluginAttach) (*emptypb.Empty, error) {
	host, err := provider.NewHostClient(req.GetAddress())
	if err != nil {
		return nil, err
	}
	s.setHost(host)
	return &emptypb.Empty{}, nil
}

func (s *server) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (s *server) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	schema, err := schemaJSON()
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetSchemaResponse{Schema: schema}, nil
}

// The provider has no configuration: whatever the engine passes (e.g. "version") is accepted.
func (s *server) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

// No configuration means nothing can change in a way that matters to the resources.
func (s *server) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (s *server) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	// Secrets must arrive as secrets, so the outputs that echo them can stay secret; previews
	// must reach Create/Update so they can return unknowns instead of running anything.
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true}, nil
}

// Cancel kills the commands still running; the engine calls it on Ctrl-C before shutting down.
func (s *server) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	s.cancel()
	return &emptypb.Empty{}, nil
}

func unknownType(t string) error {
	return fmt.Errorf("unknown resource type %q: this pulumi-resource-command implements only %s, "+
		"%s and the %s function", t, localCommandType, remoteCommandType, localRunFunction)
}

// resourceType is the type token of urn ("command:local:Command").
func resourceType(urn string) string {
	return string(resource.URN(urn).Type())
}
