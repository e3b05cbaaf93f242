package main

import (
	_ "embed"
	"encoding/json"
)

// schema.json describes what this provider implements (local.Command, local.run and
// remote.Command, whose types match upstream v1.2.1's), so tools that ask for the schema see
// the provider as it is, not upstream's full package.
//
//go:embed schema.json
var schemaTemplate []byte

// schemaJSON is the schema with this build's version.
func schemaJSON() (string, error) {
	var schema map[string]any
	if err := json.Unmarshal(schemaTemplate, &schema); err != nil {
		return "", err
	}
	schema["version"] = version
	out, err := json.Marshal(schema)
	return string(out), err
}
