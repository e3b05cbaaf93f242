package main

import (
	"context"
	"fmt"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Invoke implements command:local:run: it runs `command` every time it is called, previews
// included (upstream: "always run on any preview or deployment"), and returns its inputs
// with stdout and stderr.
func (s *server) Invoke(ctx context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	if req.GetTok() != localRunFunction {
		return nil, fmt.Errorf("unknown function %q: this pulumi-resource-command implements only %s",
			req.GetTok(), localRunFunction)
	}
	args, err := unmarshal("args", req.GetArgs())
	if err != nil {
		return nil, err
	}
	in, fails := parseInputs(args)
	if in.Command == nil {
		fails = append(fails, failure{"command", "is required"})
	}
	if len(fails) > 0 {
		checkFails := make([]*pulumirpc.CheckFailure, 0, len(fails))
		for _, f := range fails {
			checkFails = append(checkFails, &pulumirpc.CheckFailure{Property: f.property, Reason: f.reason})
		}
		return &pulumirpc.InvokeResponse{Failures: checkFails}, nil
	}

	var result commandResult
	// A function call belongs to no resource: its output lines are logged without a URN.
	if result.stdout, result.stderr, err = s.run(ctx, "", localCommand{in}, *in.Command, previous{}); err != nil {
		return nil, err
	}
	out := pick(args, runInputKeys)
	addResult(out, args, &result, s.secretOutputs)
	ret, err := marshal("return", out)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.InvokeResponse{Return: ret}, nil
}
