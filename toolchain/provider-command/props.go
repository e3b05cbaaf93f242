package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"google.golang.org/protobuf/types/known/structpb"
)

// Unknowns and secrets must survive the round trip: previews carry unknown inputs, and secret
// inputs (the members' user-data) must come back out of the provider still marked secret.
func marshalOptions(label string) plugin.MarshalOptions {
	return plugin.MarshalOptions{Label: label, KeepUnknowns: true, KeepSecrets: true, SkipNulls: true}
}

func unmarshal(label string, s *structpb.Struct) (resource.PropertyMap, error) {
	if s == nil {
		return resource.PropertyMap{}, nil
	}
	return plugin.UnmarshalProperties(s, marshalOptions(label))
}

func marshal(label string, m resource.PropertyMap) (*structpb.Struct, error) {
	return plugin.MarshalProperties(m, marshalOptions(label))
}

// pick copies the given keys of m (those present) into a new map.
func pick(m resource.PropertyMap, keys []string) resource.PropertyMap {
	out := resource.PropertyMap{}
	for _, k := range keys {
		if v, ok := m[resource.PropertyKey(k)]; ok {
			out[resource.PropertyKey(k)] = v
		}
	}
	return out
}

// reveal strips secret markers, recursively, so the values can be read as plain Go values.
// The markers are only dropped from this copy; outputs are built from the original map.
func reveal(v resource.PropertyValue) resource.PropertyValue {
	switch {
	case v.IsSecret():
		return reveal(v.SecretValue().Element)
	case v.IsArray():
		arr := make([]resource.PropertyValue, len(v.ArrayValue()))
		for i, e := range v.ArrayValue() {
			arr[i] = reveal(e)
		}
		return resource.NewArrayProperty(arr)
	case v.IsObject():
		obj := resource.PropertyMap{}
		for k, e := range v.ObjectValue() {
			obj[k] = reveal(e)
		}
		return resource.NewObjectProperty(obj)
	default:
		return v
	}
}
