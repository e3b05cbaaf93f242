package main

import (
	"context"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

// replaceOnChanges are the inputs whose change replaces the resource instead of updating it.
var replaceOnChanges = map[string]bool{"triggers": true}

// Diff compares the old inputs with the new ones, of a local and a remote Command alike, as
// upstream's default diff does: any change is an update (which runs `update`, or `create`
// again), except that a change of `triggers` replaces the resource (create the new one, then
// delete the old one). For a remote Command a change of `connection` is an update, too.
func (s *server) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	kind, olds, news, err := changedCommand(req.GetUrn(), req.GetOlds(), req.GetNews(), req.GetIgnoreChanges())
	if err != nil {
		return nil, err
	}
	for k := range news {
		// Keys the engine adds are not inputs of the command.
		if k == "version" || strings.HasPrefix(string(k), "__") {
			delete(news, k)
		}
	}

	// Compare inputs with inputs: the engine sends the old inputs; an older engine does not,
	// and then they are the input keys of the old state (which echoes the inputs).
	oldInputs := pick(olds, kind.inputKeys)
	if req.GetOldInputs() != nil {
		if oldInputs, err = unmarshal("oldInputs", req.GetOldInputs()); err != nil {
			return nil, err
		}
	}
	return diffInputs(oldInputs, news), nil
}

func diffInputs(olds, news resource.PropertyMap) *pulumirpc.DiffResponse {
	objDiff := olds.Diff(news)
	if objDiff == nil {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE, HasDetailedDiff: true}
	}
	detailed := map[string]*pulumirpc.PropertyDiff{}
	diffs, replaces := map[string]bool{}, map[string]bool{}
	for path, d := range plugin.NewDetailedDiffFromObjectDiff(objDiff, false) {
		top := topLevelKey(path)
		kind := d.Kind
		if replaceOnChanges[top] {
			kind = kind.AsReplace()
			replaces[top] = true
		}
		diffs[top] = true
		detailed[path] = &pulumirpc.PropertyDiff{Kind: rpcDiffKind(kind), InputDiff: d.InputDiff}
	}
	return &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_SOME,
		Diffs:           sortedKeys(diffs),
		Replaces:        sortedKeys(replaces),
		DetailedDiff:    detailed,
		HasDetailedDiff: true,
		// Like upstream: the replacement is created before the old command's delete runs.
		DeleteBeforeReplace: false,
	}
}

// applyIgnoreChanges puts the old values of the ignored paths back into news. The engine has
// already done this before Check; upstream does it again, and so does this.
func applyIgnoreChanges(olds, news resource.PropertyMap, paths []string) {
	oldObj, newObj := resource.NewObjectProperty(olds), resource.NewObjectProperty(news)
	for _, p := range paths {
		path, err := resource.ParsePropertyPath(p)
		if err != nil {
			continue
		}
		if v, ok := path.Get(oldObj); ok {
			path.Set(newObj, v)
		}
	}
}

// topLevelKey is the input a detailed-diff path ("triggers[0]", "environment.A") is under.
func topLevelKey(path string) string {
	if p, err := resource.ParsePropertyPath(path); err == nil && len(p) > 0 {
		if k, ok := p[0].(string); ok {
			return k
		}
	}
	return path
}

func rpcDiffKind(k plugin.DiffKind) pulumirpc.PropertyDiff_Kind {
	switch k {
	case plugin.DiffAdd:
		return pulumirpc.PropertyDiff_ADD
	case plugin.DiffAddReplace:
		return pulumirpc.PropertyDiff_ADD_REPLACE
	case plugin.DiffDelete:
		return pulumirpc.PropertyDiff_DELETE
	case plugin.DiffDeleteReplace:
		return pulumirpc.PropertyDiff_DELETE_REPLACE
	case plugin.DiffUpdateReplace:
		return pulumirpc.PropertyDiff_UPDATE_REPLACE
	default:
		return pulumirpc.PropertyDiff_UPDATE
	}
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// changedCommand reads the old state and the new inputs of a Command that Diff or Update is
// asked about, with the ignored changes put back to their old values.
func changedCommand(urn string, oldState, newInputs *structpb.Struct,
	ignoreChanges []string,
) (commandKind, resource.PropertyMap, resource.PropertyMap, error) {
	kind, err := kindOf(urn)
	if err != nil {
		return kind, nil, nil, err
	}
	olds, err := unmarshal("olds", oldState)
	if err != nil {
		return kind, nil, nil, err
	}
	news, err := unmarshal("news", newInputs)
	if err != nil {
		return kind, nil, nil, err
	}
	applyIgnoreChanges(olds, news, ignoreChanges)
	return kind, olds, news, nil
}
