package main

import (
	"context"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"google.golang.org/protobuf/types/known/structpb"
)

const testURN = "urn:pulumi:test::proj::command:local:Command::echo"

// recorder stands in for the engine's host client and keeps the status lines logged, and
// apart from them the diagnostics (messages that stay in the output).
type recorder struct {
	mu          sync.Mutex
	lines       []string
	urns        []resource.URN
	diagnostics []string
}

func (r *recorder) Log(_ context.Context, sev diag.Severity, _ resource.URN, msg string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.diagnostics = append(r.diagnostics, string(sev)+": "+msg)
	return nil
}

func (r *recorder) logDiagnostics() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.diagnostics...)
}

func (r *recorder) LogStatus(_ context.Context, _ diag.Severity, urn resource.URN, msg string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, msg)
	r.urns = append(r.urns, urn)
	return nil
}

func (r *recorder) logged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

func testServer(t *testing.T) (*server, *recorder) {
	t.Helper()
	s := newServer()
	rec := &recorder{}
	s.setHost(rec)
	return s, rec
}

// props builds a property map from plain Go values.
func props(m map[string]any) resource.PropertyMap {
	return resource.NewPropertyMapFromMap(m)
}

func toStruct(t *testing.T, m resource.PropertyMap) *structpb.Struct {
	t.Helper()
	s, err := marshal("test", m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return s
}

func fromStruct(t *testing.T, s *structpb.Struct) resource.PropertyMap {
	t.Helper()
	m, err := unmarshal("test", s)
	if err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return m
}

func str(t *testing.T, m resource.PropertyMap, key string) string {
	t.Helper()
	v, ok := m[resource.PropertyKey(key)]
	if !ok || !v.IsString() {
		t.Fatalf("%s: want a plain string, got %v (present: %v)", key, v, ok)
	}
	return v.StringValue()
}

func secret(v any) resource.PropertyValue {
	return resource.MakeSecret(resource.NewPropertyValue(v))
}

func computed() resource.PropertyValue {
	return resource.MakeComputed(resource.NewStringProperty(""))
}
