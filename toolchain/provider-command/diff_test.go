package main

import (
	"context"
	"reflect"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func diff(t *testing.T, olds, oldInputs, news resource.PropertyMap, ignore ...string) *pulumirpc.DiffResponse {
	t.Helper()
	req := &pulumirpc.DiffRequest{
		Id: "echo1234", Urn: testURN, Olds: toStruct(t, olds), News: toStruct(t, news), IgnoreChanges: ignore,
	}
	if oldInputs != nil {
		req.OldInputs = toStruct(t, oldInputs)
	}
	resp, err := testServerDiff(t).Diff(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func testServerDiff(t *testing.T) *server {
	s, _ := testServer(t)
	return s
}

func TestDiff(t *testing.T) {
	inputs := map[string]any{"create": "make vm", "triggers": []any{"a", 1}, "environment": map[string]any{"A": "1"}}
	state := props(inputs)
	state["stdout"], state["stderr"] = resource.NewStringProperty("out"), resource.NewStringProperty("")
	with := func(key string, v any) resource.PropertyMap {
		m := props(inputs)
		m[resource.PropertyKey(key)] = resource.NewPropertyValue(v)
		return m
	}

	t.Run("no change", func(t *testing.T) {
		// stdout/stderr are outputs, not inputs: they are not compared.
		if resp := diff(t, state, props(inputs), props(inputs)); resp.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
			t.Errorf("changes %v, want none", resp)
		}
		// An older engine sends no old inputs: the state's input keys are used.
		if resp := diff(t, state, nil, props(inputs)); resp.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
			t.Errorf("without old inputs: changes %v, want none", resp)
		}
	})

	t.Run("triggers replace", func(t *testing.T) {
		resp := diff(t, state, props(inputs), with("triggers", []any{"a", 2}))
		if resp.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME ||
			!reflect.DeepEqual(resp.GetReplaces(), []string{"triggers"}) || resp.GetDeleteBeforeReplace() {
			t.Errorf("got %v, want a create-before-delete replace on triggers", resp)
		}
		if k := resp.GetDetailedDiff()["triggers[1]"].GetKind(); k != pulumirpc.PropertyDiff_UPDATE_REPLACE {
			t.Errorf("detailed diff %v, want triggers[1] UPDATE_REPLACE", resp.GetDetailedDiff())
		}
	})

	t.Run("other inputs update", func(t *testing.T) {
		for key, v := range map[string]any{
			"create": "make vm2", "environment": map[string]any{"A": "2"}, "stdin": "new", "update": "x",
		} {
			resp := diff(t, state, props(inputs), with(key, v))
			if resp.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME || len(resp.GetReplaces()) != 0 ||
				!reflect.DeepEqual(resp.GetDiffs(), []string{key}) {
				t.Errorf("%s changed: got %v, want an update of %s", key, resp, key)
			}
		}
		resp := diff(t, state, props(inputs), func() resource.PropertyMap {
			m := props(inputs)
			delete(m, "environment")
			return m
		}())
		if k := resp.GetDetailedDiff()["environment"].GetKind(); k != pulumirpc.PropertyDiff_DELETE {
			t.Errorf("removed environment: %v, want DELETE", resp.GetDetailedDiff())
		}
	})

	t.Run("secretness is a change", func(t *testing.T) {
		news := props(inputs)
		news["create"] = secret("make vm")
		if resp := diff(t, state, props(inputs), news); resp.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME {
			t.Errorf("got %v, want an update", resp)
		}
	})

	t.Run("unknown input is a change", func(t *testing.T) {
		news := props(inputs)
		news["stdin"] = computed()
		if resp := diff(t, state, props(inputs), news); resp.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME {
			t.Errorf("got %v, want an update", resp)
		}
	})

	t.Run("ignored changes", func(t *testing.T) {
		resp := diff(t, state, props(inputs), with("triggers", []any{"b"}), "triggers")
		if resp.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
			t.Errorf("got %v, want no change", resp)
		}
	})
}
