package main

import (
	"slices"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestPluginVersionPadsPythonReleaseVersionsToSemver(t *testing.T) {
	for given, want := range map[string]string{"5.6.2": "5.6.2", "5.6": "5.6.0", "4": "4.0.0"} {
		got, err := pluginVersion(given)
		if err != nil || got != want {
			t.Errorf("pluginVersion(%q) = %q, %v; want %q", given, got, err, want)
		}
	}
}

func TestPluginVersionRefusesPreReleasesItCannotTranslate(t *testing.T) {
	for _, given := range []string{"3.31.0a1605189729", "1.2.3.dev4", ""} {
		if got, err := pluginVersion(given); err == nil {
			t.Errorf("pluginVersion(%q) = %q, want an error naming pulumi-plugin.json", given, got)
		}
	}
}

func TestPackageDependencyPrefersPulumiPluginJSONAndDefaultsToTheSDKVersion(t *testing.T) {
	named, err := packageDependency(pluginPackage{Name: "pulumi-tls", Version: "5.6.2",
		Plugin: plugin.PulumiPluginJSON{Resource: true, Name: "tls"}})
	if err != nil || named.Name != "tls" || named.Version != "v5.6.2" || named.Kind != "resource" {
		t.Fatalf("got %+v, %v", named, err)
	}
	pinned, err := packageDependency(pluginPackage{Name: "pulumi-command", Version: "1.2.1a1",
		Plugin: plugin.PulumiPluginJSON{Resource: true, Version: "1.2.1-alpha.1+abc"}})
	if err != nil || pinned.Name != "command" || pinned.Version != "v1.2.1-alpha.1+abc" {
		t.Fatalf("got %+v, %v", pinned, err)
	}
}

func TestExecutorArgsCarryTheRunRequestThenTheEntryPoint(t *testing.T) {
	h := newHost("/x/pulumi-language-python-exec", "127.0.0.1:1234")
	args := h.executorArgs(&pulumirpc.RunRequest{
		MonitorAddress: "127.0.0.1:5678", Project: "etcd-cluster", Stack: "local", Pwd: "/p",
		DryRun: true, Parallel: 8, Organization: "organization",
		Info: &pulumirpc.ProgramInfo{RootDirectory: "/p", EntryPoint: "."},
	})
	want := []string{"--monitor", "127.0.0.1:5678", "--engine", "127.0.0.1:1234",
		"--project", "etcd-cluster", "--root_directory", "/p", "--stack", "local", "--pwd", "/p",
		"--dry_run", "true", "--parallel", "8", "--organization", "organization", "."}
	if !slices.Equal(args, want) {
		t.Fatalf("got %q\nwant %q", args, want)
	}
}

func TestRuntimeOptionsThisHostCannotHonourAreRefusedNotIgnored(t *testing.T) {
	for _, options := range []map[string]any{{"toolchain": "poetry"}, {"typechecker": "mypy"}, {"virtualenv": 3.0}} {
		values, err := structpb.NewStruct(options)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pythonOptions(&pulumirpc.ProgramInfo{Options: values}, false); err == nil {
			t.Errorf("options %v were accepted", options)
		}
	}
	values, _ := structpb.NewStruct(map[string]any{"toolchain": "pip", "virtualenv": ".venv"})
	opts, err := pythonOptions(&pulumirpc.ProgramInfo{Options: values, RootDirectory: "/p"}, false)
	if err != nil || opts.Virtualenv != ".venv" || opts.Root != "/p" {
		t.Fatalf("got %+v, %v", opts, err)
	}
}

func TestAPluginWithoutAVirtualenvOptionGetsOneOfItsOwn(t *testing.T) {
	opts, err := pythonOptions(&pulumirpc.ProgramInfo{}, true)
	if err != nil || opts.Virtualenv != "venv" {
		t.Fatalf("got %+v, %v", opts, err)
	}
}
