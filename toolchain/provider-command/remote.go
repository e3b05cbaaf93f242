package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// command:remote:Command takes the lifecycle commands, triggers, and these inputs (upstream's
// remote CommandInputs): no interpreter or dir (the user's login shell runs the command on the
// remote host), no assets, and the connection.
var remoteCommandInputKeys = []string{
	"triggers", "create", "update", "delete",
	"stdin", "logging", "connection", "environment", "addPreviousOutputInEnv",
}

// remoteInputs are the inputs of a remote Command: those it shares with a local one, parsed
// as those are, and the connection (nil when it is not set or not known yet).
type remoteInputs struct {
	inputs
	Connection *connection
}

// remoteCommand is a command:remote:Command: its commands run on a host reached over SSH.
type remoteCommand struct{ in remoteInputs }

func (c remoteCommand) lifecycle() (create, update, del *string) {
	return c.in.Create, c.in.Update, c.in.Delete
}

func (c remoteCommand) run(ctx context.Context, s *server, urn resource.URN, command string,
	prev previous) (string, string, error) {
	if c.in.Connection == nil {
		return "", "", fmt.Errorf("running %q: the connection is not set", command)
	}
	return runRemoteCommand(ctx, command, c.in, prev, remoteLogs{
		line: s.logger(ctx, urn),
		diagnostic: func(sev diag.Severity, msg string) {
			s.diagnostic(ctx, urn, sev, msg)
		},
	})
}

// parseRemoteInputs reads the inputs of a remote Command; as parseInputs, it skips unknown
// values and returns every invalid input. As upstream, an input the resource does not have
// is invalid, and so is a missing connection.
func parseRemoteInputs(m resource.PropertyMap) (remoteInputs, []failure) {
	var in remoteInputs
	var fails []failure
	shared := resource.PropertyMap{}
	for _, k := range remoteCommandInputKeys {
		if v, ok := m[resource.PropertyKey(k)]; ok && k != "connection" {
			shared[resource.PropertyKey(k)] = v
		}
	}
	in.inputs, fails = parseInputs(shared)
	fails = append(fails, unrecognized("", m, remoteCommandInputKeys)...)

	v, ok := m["connection"]
	switch {
	case !ok || reveal(v).IsNull():
		fails = append(fails, failure{"connection", "is required"})
	case reveal(v).IsComputed():
		// Known once its sources are: a preview has nothing to connect to yet.
	default:
		conn, connFails := parseConnection("connection", reveal(v), true)
		in.Connection = conn
		fails = append(fails, connFails...)
	}
	return in, fails
}

// unrecognized returns a failure for each key of m that is not in keys. Keys that start
// with "__" belong to the engine and are skipped.
func unrecognized(prefix string, m resource.PropertyMap, keys []string) []failure {
	var fails []failure
	for _, k := range sortedPropertyKeys(m) {
		if !contains(keys, k) && !strings.HasPrefix(k, "__") {
			fails = append(fails, failure{prefix + k, "is not an input of this resource"})
		}
	}
	return fails
}

func sortedPropertyKeys(m resource.PropertyMap) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	return keys
}

// checkRemoteInputs is Check for a remote Command. As upstream's (pulumi-go-provider's
// default Check), it writes the defaults of the connection (and of its proxy) into the
// inputs when they are valid, and marks the secret inputs secret: the whole connection, and
// within it (and its proxy) the password, private key and its password.
func checkRemoteInputs(news resource.PropertyMap) (resource.PropertyMap, []failure) {
	_, fails := parseRemoteInputs(news)
	out := news.Copy()
	if v, ok := out["connection"]; ok {
		if len(fails) == 0 {
			v = withConnectionDefaults(v)
		}
		out["connection"] = markConnectionSecrets(v)
	}
	return out, fails
}
