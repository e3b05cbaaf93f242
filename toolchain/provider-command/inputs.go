package main

import (
	"fmt"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// The inputs every local command takes (upstream's BaseInputs).
var baseInputKeys = []string{
	"stdin", "logging", "interpreter", "dir", "environment",
	"assetPaths", "archivePaths", "addPreviousOutputInEnv",
}

// command:local:Command adds the lifecycle commands and triggers (upstream's ResourceInputs).
var commandInputKeys = append([]string{"triggers", "create", "update", "delete"}, baseInputKeys...)

// command:local:run adds the one command it runs.
var runInputKeys = append([]string{"command"}, baseInputKeys...)

// The values of the logging input (upstream's Logging enum).
var loggingModes = []string{"stdout", "stderr", "stdoutAndStderr", "none"}

// inputs holds the inputs of a local command as plain values. Pointers and nil slices mean
// "not set", so the defaults are applied where they are used, as upstream does: nothing is
// added to the state that the program did not set.
type inputs struct {
	Create, Update, Delete, Command *string
	Stdin, Logging, Dir             *string
	Interpreter                     []string
	Environment                     map[string]string
	AddPreviousOutputInEnv          *bool
}

func (in inputs) logStdout() bool {
	return in.Logging == nil || *in.Logging == "stdout" || *in.Logging == "stdoutAndStderr"
}

func (in inputs) logStderr() bool {
	return in.Logging == nil || *in.Logging == "stderr" || *in.Logging == "stdoutAndStderr"
}

func (in inputs) addPreviousOutput() bool {
	return in.AddPreviousOutputInEnv == nil || *in.AddPreviousOutputInEnv
}

// failure is one invalid input, reported to the engine as a CheckFailure.
type failure struct{ property, reason string }

func (f failure) Error() string { return fmt.Sprintf("%s: %s", f.property, f.reason) }

// parseInputs reads the inputs in m (secret markers are ignored). Unknown values (previews)
// are skipped: they leave the field unset. It returns every invalid input, not just the first.
func parseInputs(m resource.PropertyMap) (inputs, []failure) {
	var in inputs
	var fails []failure
	bad := func(key, reason string) { fails = append(fails, failure{key, reason}) }

	str := func(key string, dst **string) {
		v, ok := present(m, key)
		if !ok {
			return
		}
		if !v.IsString() {
			bad(key, "must be a string")
			return
		}
		s := v.StringValue()
		*dst = &s
	}
	str("create", &in.Create)
	str("update", &in.Update)
	str("delete", &in.Delete)
	str("command", &in.Command)
	str("stdin", &in.Stdin)
	str("dir", &in.Dir)
	str("logging", &in.Logging)
	if in.Logging != nil && !contains(loggingModes, *in.Logging) {
		bad("logging", fmt.Sprintf("must be one of %v, not %q", loggingModes, *in.Logging))
	}

	if v, ok := present(m, "interpreter"); ok {
		in.Interpreter = []string{}
		if !v.IsArray() {
			bad("interpreter", "must be a list of strings")
		} else {
			for i, e := range v.ArrayValue() {
				if !e.IsString() {
					bad(fmt.Sprintf("interpreter[%d]", i), "must be a string")
					continue
				}
				in.Interpreter = append(in.Interpreter, e.StringValue())
			}
		}
	}

	if v, ok := present(m, "environment"); ok {
		in.Environment = map[string]string{}
		if !v.IsObject() {
			bad("environment", "must be a map of strings")
		} else {
			for k, e := range v.ObjectValue() {
				if e.IsComputed() {
					continue
				}
				if !e.IsString() {
					bad(fmt.Sprintf("environment.%s", k), "must be a string")
					continue
				}
				in.Environment[string(k)] = e.StringValue()
			}
		}
	}

	if v, ok := present(m, "addPreviousOutputInEnv"); ok {
		if !v.IsBool() {
			bad("addPreviousOutputInEnv", "must be a boolean")
		} else {
			b := v.BoolValue()
			in.AddPreviousOutputInEnv = &b
		}
	}

	if v, ok := present(m, "triggers"); ok && !v.IsArray() {
		bad("triggers", "must be a list")
	}

	// Upstream returns the matched files as assets; this stand-in does not, and says so
	// rather than silently returning nothing.
	for _, key := range []string{"assetPaths", "archivePaths"} {
		if _, ok := present(m, key); ok {
			bad(key, "is not supported by this pulumi-resource-command (a local stand-in for "+
				"pulumi-command that implements local commands without assets or archives)")
		}
	}
	return in, fails
}

// present returns the revealed value of key if it is set and known.
func present(m resource.PropertyMap, key string) (resource.PropertyValue, bool) {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return v, false
	}
	v = reveal(v)
	if v.IsNull() || v.IsComputed() {
		return v, false
	}
	return v, true
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// sortedEnv renders the environment input as KEY=VALUE in a stable order.
func sortedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range sortedStringKeys(env) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func sortedStringKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
