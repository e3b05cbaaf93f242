package main

import (
	"context"
	"errors"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The lifecycle of command:local:Command and command:remote:Command, following upstream
// v1.2.1 (the two differ only in where a command runs: see commandKind):
//   - Create runs `create` (nothing in a preview); the ID is the resource name plus 8 random
//     hex digits.
//   - Update runs `update`, or `create` again when there is no `update`, with the previous
//     stdout/stderr in PULUMI_COMMAND_STDOUT/STDERR.
//   - Delete runs `delete` with the inputs and outputs from the state.
//   - Read returns the state unchanged: there is nothing to refresh a command from.
// A command that fails (non-zero exit) fails the operation and changes no state.

// commandKind is what one Command resource type adds to the common lifecycle.
type commandKind struct {
	// inputKeys are the inputs of the type, which the state echoes.
	inputKeys []string
	// check returns the inputs as Check passes them on (with any defaults and secret markers
	// the type adds) and every invalid input.
	check func(news resource.PropertyMap) (resource.PropertyMap, []failure)
	// parse reads the inputs (or a state) into a command that can run.
	parse func(props resource.PropertyMap) (commandSpec, []failure)
}

// commandSpec is a Command's inputs, parsed: its lifecycle commands and a way to run one.
type commandSpec interface {
	lifecycle() (create, update, del *string)
	// run runs command with these inputs; prev is the last create/update's output.
	run(ctx context.Context, s *server, urn resource.URN, command string, prev previous) (string, string, error)
}

var commandKinds = map[string]commandKind{
	localCommandType: {
		inputKeys: commandInputKeys,
		check: func(news resource.PropertyMap) (resource.PropertyMap, []failure) {
			// No defaults are written into the inputs (upstream writes none): they apply at
			// run time.
			_, fails := parseInputs(news)
			return news, fails
		},
		parse: func(props resource.PropertyMap) (commandSpec, []failure) {
			in, fails := parseInputs(props)
			return localCommand{in}, fails
		},
	},
	remoteCommandType: {
		inputKeys: remoteCommandInputKeys,
		check:     checkRemoteInputs,
		parse: func(props resource.PropertyMap) (commandSpec, []failure) {
			in, fails := parseRemoteInputs(props)
			return remoteCommand{in}, fails
		},
	},
}

// kindOf returns the commandKind of urn's type, or an error for a type this provider lacks.
func kindOf(urn string) (commandKind, error) {
	t := resourceType(urn)
	kind, ok := commandKinds[t]
	if !ok {
		return commandKind{}, unknownType(t)
	}
	return kind, nil
}

// localCommand is a command:local:Command: its commands run on this machine.
type localCommand struct{ in inputs }

func (c localCommand) lifecycle() (create, update, del *string) {
	return c.in.Create, c.in.Update, c.in.Delete
}

func (c localCommand) run(ctx context.Context, s *server, urn resource.URN, command string,
	prev previous) (string, string, error) {
	return runCommand(ctx, command, c.in, prev, s.logger(ctx, urn))
}

func (s *server) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	kind, err := kindOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	news, err := unmarshal("news", req.GetNews())
	if err != nil {
		return nil, err
	}
	checked, fails := kind.check(news)
	checkFails := make([]*pulumirpc.CheckFailure, 0, len(fails))
	for _, f := range fails {
		checkFails = append(checkFails, &pulumirpc.CheckFailure{Property: f.property, Reason: f.reason})
	}
	inputs, err := marshal("inputs", checked)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: inputs, Failures: checkFails}, nil
}

func (s *server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	urn := resource.URN(req.GetUrn())
	kind, err := kindOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	props, err := unmarshal("properties", req.GetProperties())
	if err != nil {
		return nil, err
	}
	spec, err := validInputs(kind, props)
	if err != nil {
		return nil, err
	}
	id, err := resource.NewUniqueHex(urn.Name(), 8, 0)
	if err != nil {
		return nil, err
	}

	var result *commandResult // nil: the outputs are not known yet
	if !req.GetPreview() {
		result = &commandResult{}
		if create, _, _ := spec.lifecycle(); create != nil {
			if result.stdout, result.stderr, err = s.run(ctx, urn, spec, *create, previous{}); err != nil {
				return nil, err
			}
		}
	}
	state, err := marshal("state", s.outputs(kind, props, result))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: state}, nil
}

func (s *server) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if _, err := kindOf(req.GetUrn()); err != nil {
		return nil, err
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (s *server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	urn := resource.URN(req.GetUrn())
	kind, olds, news, err := changedCommand(req.GetUrn(), req.GetOlds(), req.GetNews(), req.GetIgnoreChanges())
	if err != nil {
		return nil, err
	}
	spec, err := validInputs(kind, news)
	if err != nil {
		return nil, err
	}

	var result *commandResult // nil: the outputs are not known yet
	if !req.GetPreview() {
		prev := previousOutput(olds)
		// Without a command to run, the previous outputs stay.
		result = &commandResult{stdout: prev.stdout, stderr: prev.stderr}
		command, update, _ := spec.lifecycle()
		if update != nil {
			command = update
		}
		if command != nil {
			if result.stdout, result.stderr, err = s.run(ctx, urn, spec, *command, prev); err != nil {
				return nil, err
			}
		}
	}
	state, err := marshal("state", s.outputs(kind, news, result))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: state}, nil
}

func (s *server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	urn := resource.URN(req.GetUrn())
	kind, err := kindOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	state, err := unmarshal("properties", req.GetProperties())
	if err != nil {
		return nil, err
	}
	// The state's inputs were checked when they were created; a bad value there (e.g. from
	// a state written by another provider version) still must not block the delete.
	spec, _ := kind.parse(state)
	if _, _, del := spec.lifecycle(); del != nil {
		if _, _, err := s.run(ctx, urn, spec, *del, previousOutput(state)); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// commandResult is what a run produced.
type commandResult struct{ stdout, stderr string }

// outputs builds the state: the inputs as given (each keeps its own secretness), plus stdout
// and stderr, which are unknown when result is nil (a preview).
func (s *server) outputs(kind commandKind, props resource.PropertyMap, result *commandResult) resource.PropertyMap {
	out := pick(props, kind.inputKeys)
	addResult(out, props, result, s.secretOutputs)
	return out
}

// addResult sets stdout and stderr in out.
func addResult(out, props resource.PropertyMap, result *commandResult, secretIfInputSecret bool) {
	stdout, stderr := resource.MakeComputed(resource.NewStringProperty("")),
		resource.MakeComputed(resource.NewStringProperty(""))
	if result != nil {
		stdout, stderr = resource.NewStringProperty(result.stdout), resource.NewStringProperty(result.stderr)
	}
	if secretIfInputSecret && props.ContainsSecrets() {
		stdout, stderr = resource.MakeSecret(stdout), resource.MakeSecret(stderr)
	}
	out["stdout"], out["stderr"] = stdout, stderr
}

// previousOutput reads stdout and stderr from a state, for PULUMI_COMMAND_STDOUT/STDERR.
func previousOutput(state resource.PropertyMap) previous {
	var p previous
	if v, ok := present(state, "stdout"); ok && v.IsString() {
		p.stdout = v.StringValue()
	}
	if v, ok := present(state, "stderr"); ok && v.IsString() {
		p.stderr = v.StringValue()
	}
	return p
}

// validInputs parses the inputs and turns invalid ones into one error (Check has already
// reported them to the user; this guards the operations the engine calls after it).
func validInputs(kind commandKind, props resource.PropertyMap) (commandSpec, error) {
	spec, fails := kind.parse(props)
	errs := make([]error, 0, len(fails))
	for _, f := range fails {
		errs = append(errs, f)
	}
	return spec, errors.Join(errs...)
}

// run runs one command of spec for urn, under a context that Cancel ends.
func (s *server) run(ctx context.Context, urn resource.URN, spec commandSpec, command string,
	prev previous) (string, string, error) {
	ctx, done := s.operation(ctx)
	defer done()
	return spec.run(ctx, s, urn, command, prev)
}
