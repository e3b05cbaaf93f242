package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

func TestPluginInfoAndConfigure(t *testing.T) {
	s, _ := testServer(t)
	info, err := s.GetPluginInfo(context.Background(), &emptypb.Empty{})
	if err != nil || info.GetVersion() != version {
		t.Errorf("plugin info %v, %v; want version %s", info, err, version)
	}
	conf, err := s.Configure(context.Background(), &pulumirpc.ConfigureRequest{})
	if err != nil || !conf.GetAcceptSecrets() || !conf.GetSupportsPreview() {
		t.Errorf("configure %v, %v; want secrets and previews", conf, err)
	}
}

func TestSchema(t *testing.T) {
	s, _ := testServer(t)
	resp, err := s.GetSchema(context.Background(), &pulumirpc.GetSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Name      string
		Version   string
		Resources map[string]struct {
			InputProperties map[string]struct{ ReplaceOnChanges bool }
			Properties      map[string]any
		}
		Functions map[string]any
	}
	if err := json.Unmarshal([]byte(resp.GetSchema()), &schema); err != nil {
		t.Fatal(err)
	}
	cmd, ok := schema.Resources[localCommandType]
	if schema.Name != "command" || schema.Version != version || !ok || schema.Functions[localRunFunction] == nil {
		t.Fatalf("schema %s", resp.GetSchema())
	}
	for _, k := range commandInputKeys {
		if _, ok := cmd.InputProperties[k]; !ok {
			t.Errorf("input %s missing from the schema", k)
		}
		if _, ok := cmd.Properties[k]; !ok {
			t.Errorf("output %s missing from the schema", k)
		}
		if cmd.InputProperties[k].ReplaceOnChanges != replaceOnChanges[k] {
			t.Errorf("input %s: replaceOnChanges disagrees with Diff", k)
		}
	}
}

func TestInvokeLocalRun(t *testing.T) {
	s, _ := testServer(t)
	resp, err := s.Invoke(context.Background(), &pulumirpc.InvokeRequest{
		Tok: localRunFunction, Args: toStruct(t, props(map[string]any{"command": `echo "Hello, $WHO!"`,
			"environment": map[string]any{"WHO": "World"}})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ret := fromStruct(t, resp.GetReturn())
	if str(t, ret, "stdout") != "Hello, World!" || str(t, ret, "stderr") != "" ||
		str(t, ret, "command") != `echo "Hello, $WHO!"` {
		t.Errorf("return %v", ret)
	}

	resp, err = s.Invoke(context.Background(), &pulumirpc.InvokeRequest{Tok: localRunFunction, Args: toStruct(t, props(nil))})
	if err != nil || len(resp.GetFailures()) != 1 || resp.GetFailures()[0].GetProperty() != "command" {
		t.Errorf("without command: %v, %v; want a failure on command", resp, err)
	}

	_, err = s.Invoke(context.Background(), &pulumirpc.InvokeRequest{
		Tok: localRunFunction, Args: toStruct(t, props(map[string]any{"command": "echo no >&2; exit 2"})),
	})
	if err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "no") {
		t.Errorf("failing run: error %v", err)
	}
}
