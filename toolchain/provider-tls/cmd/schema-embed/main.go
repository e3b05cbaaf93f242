// Command schema-embed copies tfgen's schema.json to the file pulumi-resource-tls embeds, adding
// the package version (tfgen leaves it out): schema-embed IN OUT VERSION.
package main

import (
	"encoding/json"
	"log"
	"os"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: schema-embed SCHEMA_JSON OUT_JSON VERSION")
	}
	in, err := os.ReadFile(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(in, &spec); err != nil {
		log.Fatalf("%s: %v", os.Args[1], err)
	}
	version, err := json.Marshal(os.Args[3])
	if err != nil {
		log.Fatal(err)
	}
	spec["version"] = version
	out, err := json.Marshal(spec)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(os.Args[2], out, 0o644); err != nil {
		log.Fatal(err)
	}
}
