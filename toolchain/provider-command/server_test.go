package main

import (
	"context"
	"encoding/json"
	"reflect"
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
		Types     map[string]json.RawMessage
		Resources map[string]struct {
			InputProperties map[string]struct {
				ReplaceOnChanges bool
				Secret           bool
			}
			Properties     map[string]any
			RequiredInputs []string
		}
		Functions map[string]any
	}
	if err := json.Unmarshal([]byte(resp.GetSchema()), &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Name != "command" || schema.Version != version || schema.Functions[localRunFunction] == nil {
		t.Fatalf("schema %s", resp.GetSchema())
	}
	for typ, kind := range commandKinds {
		cmd, ok := schema.Resources[typ]
		if !ok {
			t.Errorf("%s missing from the schema", typ)
			continue
		}
		if len(cmd.InputProperties) != len(kind.inputKeys) {
			t.Errorf("%s: the schema has inputs %v, the provider %v", typ, cmd.InputProperties, kind.inputKeys)
		}
		for _, k := range kind.inputKeys {
			if _, ok := cmd.InputProperties[k]; !ok {
				t.Errorf("%s: input %s missing from the schema", typ, k)
			}
			if _, ok := cmd.Properties[k]; !ok {
				t.Errorf("%s: output %s missing from the schema", typ, k)
			}
			if cmd.InputProperties[k].ReplaceOnChanges != replaceOnChanges[k] {
				t.Errorf("%s: input %s: replaceOnChanges disagrees with Diff", typ, k)
			}
		}
	}
	remote := schema.Resources[remoteCommandType]
	if !remote.InputProperties["connection"].Secret || !reflect.DeepEqual(remote.RequiredInputs, []string{"connection"}) {
		t.Errorf("remote connection: want a required secret input")
	}
	for _, typ := range []string{"command:remote:Connection", "command:remote:ProxyConnection"} {
		var conn struct {
			Properties map[string]struct {
				Secret  bool
				Default any
			}
			Required []string
		}
		if err := json.Unmarshal(schema.Types[typ], &conn); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		keys := endpointKeys
		if typ == "command:remote:Connection" {
			keys = connectionKeys
		}
		if len(conn.Properties) != len(keys) || !reflect.DeepEqual(conn.Required, []string{"host"}) {
			t.Errorf("%s: properties %v, required %v", typ, conn.Properties, conn.Required)
		}
		for _, k := range keys {
			if conn.Properties[k].Secret != contains(secretEndpointKeys, k) {
				t.Errorf("%s.%s: secret disagrees with Check", typ, k)
			}
		}
		for k, want := range map[string]any{"user": defaultUser, "port": float64(defaultPort),
			"dialErrorLimit": float64(defaultDialErrorLimit), "perDialTimeout": float64(defaultPerDialTimeout)} {
			if conn.Properties[k].Default != want {
				t.Errorf("%s.%s: default %v, want %v", typ, k, conn.Properties[k].Default, want)
			}
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
