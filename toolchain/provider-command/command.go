package main

import (
	"context"
	"errors"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The lifecycle of command:local:Command, following upstream v1.2.1:
//   - Create runs `create` (nothing in a preview); the ID is the resource name plus 8 random
//     hex digits.
//   - Update runs `update`, or `create` again when there is no `update`, with the previous
//     stdout/stderr in PULUMI_COMMAND_STDOUT/STDERR.
//   - Delete runs `delete` with the inputs and outputs from the state.
//   - Read returns the state unchanged: there is nothing to refresh a command from.
// A command that fails (non-zero exit) fails the operation and changes no state.

func (s *server) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if t := resourceType(req.GetUrn()); t != localCommandType {
		return nil, unknownType(t)
	}
	news, err := unmarshal("news", req.GetNews())
	if err != nil {
		return nil, err
	}
	_, fails := parseInputs(news)
	checkFails := make([]*pulumirpc.CheckFailure, 0, len(fails))
	for _, f := range fails {
		checkFails = append(checkFails, &pulumirpc.CheckFailure{Property: f.property, Reason: f.reason})
	}
	// No defaults are written into the inputs (upstream writes none): they apply at run time.
	inputs, err := marshal("inputs", news)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: inputs, Failures: checkFails}, nil
}

func (s *server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	urn := resource.URN(req.GetUrn())
	if t := resourceType(req.GetUrn()); t != localCommandType {
		return nil, unknownType(t)
	}
	props, err := unmarshal("properties", req.GetProperties())
	if err != nil {
		return nil, err
	}
	in, err := validInputs(props)
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
		if in.Create != nil {
			if result.stdout, result.stderr, err = s.run(ctx, urn, *in.Create, in, previous{}); err != nil {
				return nil, err
			}
		}
	}
	state, err := marshal("state", s.outputs(props, result))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: state}, nil
}

func (s *server) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if t := resourceType(req.GetUrn()); t != localCommandType {
		return nil, unknownType(t)
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (s *server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	urn := resource.URN(req.GetUrn())
	olds, news, err := changedCommand(req.GetUrn(), req.GetOlds(), req.GetNews(), req.GetIgnoreChanges())
	if err != nil {
		return nil, err
	}
	in, err := validInputs(news)
	if err != nil {
		return nil, err
	}

	var result *commandResult // nil: the outputs are not known yet
	if !req.GetPreview() {
		prev := previousOutput(olds)
		// Without a command to run, the previous outputs stay.
		result = &commandResult{stdout: prev.stdout, stderr: prev.stderr}
		command := in.Create
		if in.Update != nil {
			command = in.Update
		}
		if command != nil {
			if result.stdout, result.stderr, err = s.run(ctx, urn, *command, in, prev); err != nil {
				return nil, err
			}
		}
	}
	state, err := marshal("state", s.outputs(news, result))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: state}, nil
}

func (s *server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	urn := resource.URN(req.GetUrn())
	if t := resourceType(req.GetUrn()); t != localCommandType {
		return nil, unknownType(t)
	}
	state, err := unmarshal("properties", req.GetProperties())
	if err != nil {
		return nil, err
	}
	// The state's inputs were checked when they were created; a bad value there (e.g. from
	// a state written by another provider version) still must not block the delete.
	in, _ := parseInputs(state)
	if in.Delete != nil {
		if _, _, err := s.run(ctx, urn, *in.Delete, in, previousOutput(state)); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// commandResult is what a run produced.
type commandResult struct{ stdout, stderr string }

// outputs builds the state: the inputs as given (each keeps its own secretness), plus stdout
// and stderr, which are unknown when result is nil (a preview).
func (s *server) outputs(props resource.PropertyMap, result *commandResult) resource.PropertyMap {
	out := pick(props, commandInputKeys)
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
func validInputs(props resource.PropertyMap) (inputs, error) {
	in, fails := parseInputs(props)
	errs := make([]error, 0, len(fails))
	for _, f := range fails {
		errs = append(errs, f)
	}
	return in, errors.Join(errs...)
}

// run runs one command for urn, under a context that Cancel ends.
func (s *server) run(ctx context.Context, urn resource.URN, command string, in inputs,
	prev previous) (string, string, error) {
	ctx, done := s.operation(ctx)
	defer done()
	return runCommand(ctx, command, in, prev, s.logger(ctx, urn))
}
