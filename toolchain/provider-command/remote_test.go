package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"google.golang.org/protobuf/types/known/emptypb"
)

const remoteURN = "urn:pulumi:test::proj::command:remote:Command::member"

// remoteProps builds the inputs of a remote Command as the Python SDK sends them: the
// connection secret.
func remoteProps(conn map[string]any, m map[string]any) resource.PropertyMap {
	all := map[string]any{"connection": conn}
	for k, v := range m {
		all[k] = v
	}
	p := props(all)
	p["connection"] = resource.MakeSecret(p["connection"])
	return p
}

func checkRemote(t *testing.T, s *server, news resource.PropertyMap) (resource.PropertyMap, []string) {
	t.Helper()
	resp, err := s.Check(context.Background(), &pulumirpc.CheckRequest{Urn: remoteURN, News: toStruct(t, news)})
	if err != nil {
		t.Fatal(err)
	}
	var fails []string
	for _, f := range resp.GetFailures() {
		fails = append(fails, f.GetProperty()+": "+f.GetReason())
	}
	return fromStruct(t, resp.GetInputs()), fails
}

// checked runs Check, as the engine does before every other call, and wants no failures.
func checked(t *testing.T, s *server, news resource.PropertyMap) resource.PropertyMap {
	t.Helper()
	in, fails := checkRemote(t, s, news)
	if len(fails) != 0 {
		t.Fatalf("check failures: %v", fails)
	}
	return in
}

func remoteCreate(t *testing.T, s *server, in resource.PropertyMap, preview bool) (resource.PropertyMap, error) {
	t.Helper()
	resp, err := s.Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: remoteURN, Properties: toStruct(t, checked(t, s, in)), Preview: preview,
	})
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(resp.GetId(), "member") || len(resp.GetId()) != len("member")+8 {
		t.Errorf("id %q: want the name plus 8 random hex digits", resp.GetId())
	}
	return fromStruct(t, resp.GetProperties()), nil
}

func remoteUpdate(t *testing.T, s *server, olds, news resource.PropertyMap) (resource.PropertyMap, error) {
	t.Helper()
	resp, err := s.Update(context.Background(), &pulumirpc.UpdateRequest{
		Id: "member1234", Urn: remoteURN, Olds: toStruct(t, olds), News: toStruct(t, checked(t, s, news)),
	})
	if err != nil {
		return nil, err
	}
	return fromStruct(t, resp.GetProperties()), nil
}

func remoteDelete(t *testing.T, s *server, state resource.PropertyMap) error {
	t.Helper()
	_, err := s.Delete(context.Background(), &pulumirpc.DeleteRequest{
		Id: "member1234", Urn: remoteURN, Properties: toStruct(t, state),
	})
	return err
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestRemoteCreateReturnsStdoutAndStderr(t *testing.T) {
	srv := startSSHD(t)
	s, rec := testServer(t)
	state, err := remoteCreate(t, s, remoteProps(srv.connection(), map[string]any{
		"create": "echo hello; echo warn >&2; id -un",
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := str(t, state, "stdout"), "hello\n"+srv.user; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got := str(t, state, "stderr"); got != "warn" {
		t.Errorf("stderr %q, want warn", got)
	}
	// The state echoes the inputs: the connection secret, with the defaults Check added.
	conn := state["connection"]
	if !conn.IsSecret() {
		t.Fatalf("connection %v: want it secret", conn)
	}
	c := conn.SecretValue().Element.ObjectValue()
	if !c["privateKey"].IsSecret() || c["perDialTimeout"].NumberValue() != 15 ||
		c["port"].NumberValue() != float64(srv.port) || c["dialErrorLimit"].NumberValue() != 0 {
		t.Errorf("connection in the state: %v", c)
	}
	if str(t, state, "create") == "" {
		t.Errorf("create not echoed: %v", state)
	}
	logged := strings.Join(rec.logged(), "\n")
	for _, line := range []string{"hello", "warn"} {
		if !strings.Contains(logged, line) {
			t.Errorf("logged %q, want the line %q", logged, line)
		}
	}
}

func TestRemoteStdinReachesCommand(t *testing.T) {
	srv := startSSHD(t)
	s, _ := testServer(t)
	state, err := remoteCreate(t, s, remoteProps(srv.connection(), map[string]any{
		"create": "tr a-z A-Z", "stdin": "member script\n", "logging": "none",
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "MEMBER SCRIPT" {
		t.Errorf("stdout %q, want MEMBER SCRIPT", got)
	}
}

func TestRemoteEnvironmentAndPreviousOutput(t *testing.T) {
	srv := startSSHD(t, "AcceptEnv *")
	s, _ := testServer(t)
	in := remoteProps(srv.connection(), map[string]any{
		"create":      `printf '%s|%s' "$MEMBER" "$PULUMI_COMMAND_STDOUT"`,
		"environment": map[string]any{"MEMBER": "etcd-1", "B": "x=y"},
	})
	state, err := remoteCreate(t, s, in, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "etcd-1|" {
		t.Errorf("stdout %q, want etcd-1|", got)
	}
	// An update without `update` runs `create` again, with the previous stdout.
	state, err = remoteUpdate(t, s, state, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "etcd-1|etcd-1|" {
		t.Errorf("after update: stdout %q, want etcd-1|etcd-1|", got)
	}
}

func TestRemoteEnvironmentRefused(t *testing.T) {
	srv := startSSHD(t, "AcceptEnv MEMBER")
	s, rec := testServer(t)
	// A refused variable of `environment` fails the command (upstream: an error).
	_, err := remoteCreate(t, s, remoteProps(srv.connection(), map[string]any{
		"create": "true", "environment": map[string]any{"MEMBER": "etcd-1", "NOT_ACCEPTED": "x"},
	}), false)
	wantErr(t, err, `could not set environment variable "NOT_ACCEPTED"`, "setenv failed")
	if d := rec.logDiagnostics(); len(d) != 1 || !strings.HasPrefix(d[0], "error: ") ||
		!strings.Contains(d[0], "AcceptEnv") {
		t.Errorf("diagnostics %q, want one error that names AcceptEnv", d)
	}

	// A refused PULUMI_COMMAND_STDOUT is only warned about (upstream: a warning).
	s, rec = testServer(t)
	olds := remoteProps(srv.connection(), map[string]any{"create": "true"})
	olds["stdout"], olds["stderr"] = resource.NewStringProperty("old"), resource.NewStringProperty("")
	state, err := remoteUpdate(t, s, olds, remoteProps(srv.connection(), map[string]any{
		"create": `echo "$MEMBER ${PULUMI_COMMAND_STDOUT:-unset}"`, "environment": map[string]any{"MEMBER": "etcd-2"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "etcd-2 unset" {
		t.Errorf("stdout %q, want etcd-2 unset", got)
	}
	if d := rec.logDiagnostics(); len(d) != 1 || !strings.HasPrefix(d[0], "warning: ") ||
		!strings.Contains(d[0], "PULUMI_COMMAND_STDOUT") {
		t.Errorf("diagnostics %q, want one warning about PULUMI_COMMAND_STDOUT", d)
	}
}

func TestRemoteNonZeroExitFailsWithOutput(t *testing.T) {
	srv := startSSHD(t)
	s, _ := testServer(t)
	_, err := remoteCreate(t, s, remoteProps(srv.connection(), map[string]any{
		"create": "echo progress; echo 'disk full' >&2; exit 3",
	}), false)
	wantErr(t, err, "Process exited with status 3", "progress", "disk full", `running "echo progress`)
}

func TestRemoteUpdateRunsUpdateOrCreate(t *testing.T) {
	srv := startSSHD(t, "AcceptEnv PULUMI_COMMAND_*")
	s, _ := testServer(t)
	olds := remoteProps(srv.connection(), map[string]any{"create": "echo created"})
	olds["stdout"], olds["stderr"] = resource.NewStringProperty("created"), resource.NewStringProperty("")

	state, err := remoteUpdate(t, s, olds, remoteProps(srv.connection(), map[string]any{
		"create": "echo created", "update": `echo "updated after $PULUMI_COMMAND_STDOUT"`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "updated after created" {
		t.Errorf("with update: stdout %q", got)
	}
	state, err = remoteUpdate(t, s, olds, remoteProps(srv.connection(), map[string]any{
		"create": `echo "again, $PULUMI_COMMAND_STDOUT"`, "addPreviousOutputInEnv": false,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "again, " {
		t.Errorf("create again without the previous output: stdout %q", got)
	}
	// Without a command nothing runs (nothing is dialled) and the outputs stay.
	dead := srv.connection()
	dead["port"] = float64(freePort(t))
	state, err = remoteUpdate(t, s, olds, remoteProps(dead, map[string]any{"delete": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "created" {
		t.Errorf("without a command: stdout %q, want the previous one", got)
	}
	_, err = remoteUpdate(t, s, olds, remoteProps(srv.connection(), map[string]any{"update": "exit 7"}))
	wantErr(t, err, "Process exited with status 7")
}

func TestRemoteDeleteRunsDelete(t *testing.T) {
	srv := startSSHD(t, "AcceptEnv *")
	dir := t.TempDir() // the "remote" host is this one
	s, _ := testServer(t)
	state, err := remoteCreate(t, s, remoteProps(srv.connection(), map[string]any{
		"create":      "echo created",
		"delete":      `printf '%s|%s|%s' "$PULUMI_COMMAND_STDOUT" "$MEMBER" "$(cat)" > ` + dir + "/out",
		"environment": map[string]any{"MEMBER": "etcd-3"}, "stdin": "bye",
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := remoteDelete(t, s, state); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "created|etcd-3|bye"; string(got) != want {
		t.Errorf("delete saw %q, want %q", got, want)
	}

	state["delete"] = resource.NewStringProperty("exit 4")
	wantErr(t, remoteDelete(t, s, state), "Process exited with status 4")

	// Without a delete command nothing is dialled.
	dead := srv.connection()
	dead["port"] = float64(freePort(t))
	if err := remoteDelete(t, s, remoteProps(dead, map[string]any{"create": "true"})); err != nil {
		t.Errorf("delete without a command: %v", err)
	}
}

func TestRemoteDiff(t *testing.T) {
	s, _ := testServer(t)
	conn := map[string]any{"host": "10.0.0.1", "port": float64(22), "user": "root", "privateKey": "k"}
	inputs := remoteProps(conn, map[string]any{"create": "rollout", "triggers": []any{"v1"}})
	state := inputs.Copy()
	state["stdout"], state["stderr"] = resource.NewStringProperty("out"), resource.NewStringProperty("")
	diffWith := func(news resource.PropertyMap) *pulumirpc.DiffResponse {
		resp, err := s.Diff(context.Background(), &pulumirpc.DiffRequest{
			Id: "member1234", Urn: remoteURN, Olds: toStruct(t, state),
			OldInputs: toStruct(t, inputs), News: toStruct(t, news),
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	if resp := diffWith(inputs); resp.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
		t.Errorf("unchanged: %v", resp)
	}
	resp := diffWith(remoteProps(conn, map[string]any{"create": "rollout", "triggers": []any{"v2"}}))
	if !reflect.DeepEqual(resp.GetReplaces(), []string{"triggers"}) || resp.GetDeleteBeforeReplace() {
		t.Errorf("triggers changed: %v, want a create-before-delete replace", resp)
	}
	moved := map[string]any{"host": "10.0.0.2", "port": float64(22), "user": "root", "privateKey": "k"}
	for name, news := range map[string]resource.PropertyMap{
		"connection": remoteProps(moved, map[string]any{"create": "rollout", "triggers": []any{"v1"}}),
		"create":     remoteProps(conn, map[string]any{"create": "rollout2", "triggers": []any{"v1"}}),
		"update":     remoteProps(conn, map[string]any{"create": "rollout", "update": "u", "triggers": []any{"v1"}}),
	} {
		resp := diffWith(news)
		if resp.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME || len(resp.GetReplaces()) != 0 ||
			!reflect.DeepEqual(resp.GetDiffs(), []string{name}) {
			t.Errorf("%s changed: %v, want an update of %s", name, resp, name)
		}
	}
}

func TestRemoteThroughProxy(t *testing.T) {
	target := startSSHD(t)
	bastion := startSSHD(t, "LogLevel DEBUG1", "PermitOpen 127.0.0.1:"+target.portString())
	s, _ := testServer(t)
	conn := target.connection()
	conn["proxy"] = bastion.connection()
	state, err := remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "echo via bastion"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "via bastion" {
		t.Errorf("stdout %q", got)
	}
	// The bastion forwarded a connection to the target's port.
	if log := bastion.log.String(); !strings.Contains(log, "direct-tcpip") ||
		!strings.Contains(log, "port "+target.portString()) {
		t.Errorf("the bastion did not forward to port %d:\n%s", target.port, log)
	}
	// Check wrote the proxy's defaults, and made its key secret.
	proxy := state["connection"].SecretValue().Element.ObjectValue()["proxy"].ObjectValue()
	if proxy["perDialTimeout"].NumberValue() != 15 || !proxy["privateKey"].IsSecret() {
		t.Errorf("proxy in the state: %v", proxy)
	}

	// A bastion that cannot be reached fails with a message that says so.
	conn["proxy"].(map[string]any)["port"] = float64(freePort(t))
	_, err = remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), false)
	wantErr(t, err, "proxy: connecting to", "connection refused", "after 1 failed attempt")

	// The bastion may refuse to forward: then the target cannot be reached through it.
	conn = target.connection()
	conn["proxy"] = bastion.connection()
	conn["port"] = float64(freePort(t))
	_, err = remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), false)
	wantErr(t, err, "proxy: connecting to", "through", "after 1 failed attempt")
}

func TestRemoteDialRetriesThenFails(t *testing.T) {
	noAgent(t)
	s, rec := testServer(t)
	port := freePort(t)
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	conn := map[string]any{"host": "127.0.0.1", "port": float64(port), "privateKey": keys.client,
		"dialErrorLimit": float64(3)}
	start := time.Now()
	_, err = remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), false)
	elapsed := time.Since(start)
	wantErr(t, err, "connecting to root@127.0.0.1:", "after 4 failed attempts", "connection refused")
	// Three retries, 100ms, 150ms and 225ms after the failures before them.
	if elapsed < 450*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("took %v, want about 0.5s", elapsed)
	}
	want := []string{"Dial 1/3 failed: retrying", "Dial 2/3 failed: retrying", "Dial 3/3 failed: retrying"}
	if got := rec.logged(); !reflect.DeepEqual(got, want) {
		t.Errorf("status %q, want %q", got, want)
	}
}

func TestRemoteRetriesUntilSSHDIsUp(t *testing.T) {
	// A member's sshd may come up after the command's first dial: the retries wait for it.
	srv := startSSHD(t)
	s, rec := testServer(t)
	conn := srv.connection()
	port := freePort(t)
	conn["port"], conn["dialErrorLimit"] = float64(port), float64(20)
	// After a while, port forwards to the sshd: until then nothing listens there.
	time.AfterFunc(600*time.Millisecond, func() { forward(t, port, srv.port) })
	state, err := remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "echo up"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if str(t, state, "stdout") != "up" {
		t.Errorf("state %v", state)
	}
	if got := rec.logged(); len(got) < 2 || got[0] != "Dial 1/20 failed: retrying" || got[len(got)-1] != "up" {
		t.Errorf("logged %q, want retries, then the output", got)
	}
}

// forward makes 127.0.0.1:from a TCP forwarder to 127.0.0.1:to.
func forward(t *testing.T, from, to int) {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(from))
	if err != nil {
		t.Error(err)
		return
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				d, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(to))
				if err != nil {
					return
				}
				defer func() { _ = d.Close() }()
				go func() { _, _ = io.Copy(d, c); _ = d.Close() }()
				_, _ = io.Copy(c, d)
			}()
		}
	}()
}

func TestRemoteWrongKeyFails(t *testing.T) {
	srv := startSSHD(t)
	s, _ := testServer(t)
	conn := srv.connection()
	conn["privateKey"] = srv.keys.other
	_, err := remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), false)
	wantErr(t, err, "unable to authenticate", "publickey", "after 1 failed attempt")

	conn["privateKey"] = "not a key"
	_, err = remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), false)
	wantErr(t, err, "parsing privateKey")
}

func TestRemoteEncryptedKeyAndAgent(t *testing.T) {
	srv := startSSHD(t)
	s, _ := testServer(t)
	raw, err := ssh.ParseRawPrivateKey([]byte(srv.keys.client))
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := pemKey(raw, []byte("passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	conn := srv.connection()
	conn["privateKey"], conn["privateKeyPassword"] = encrypted, "passphrase"
	if _, err := remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), false); err != nil {
		t.Errorf("encrypted key: %v", err)
	}
	conn["privateKeyPassword"] = "wrong"
	_, err = remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), false)
	wantErr(t, err, "parsing privateKey")

	// An agent that holds the key, at agentSocketPath.
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(keyring, c); _ = c.Close() }()
		}
	}()
	conn = srv.connection()
	delete(conn, "privateKey")
	conn["agentSocketPath"] = socket
	state, err := remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "echo agent"}), false)
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	if str(t, state, "stdout") != "agent" {
		t.Errorf("agent: %v", state)
	}
}

func TestRemoteHostKey(t *testing.T) {
	srv := startSSHD(t)
	s, _ := testServer(t)
	for name, key := range map[string]string{"ed25519": srv.keys.hostEd25519Pub, "rsa": srv.keys.hostRSAPub} {
		conn := srv.connection()
		conn["hostKey"] = key
		if _, err := remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), false); err != nil {
			t.Errorf("%s host key: %v", name, err)
		}
	}
	conn := srv.connection()
	conn["hostKey"] = srv.keys.otherPub
	_, err := remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), false)
	wantErr(t, err, "host key mismatch")

	conn["hostKey"] = "ssh-ed25519 garbage"
	_, fails := checkRemote(t, s, remoteProps(conn, map[string]any{"create": "true"}))
	if len(fails) != 1 || !strings.HasPrefix(fails[0], "connection.hostKey: ") {
		t.Errorf("failures %q, want one on connection.hostKey", fails)
	}
}

func TestRemotePreviewRunsNothing(t *testing.T) {
	noAgent(t)
	s, rec := testServer(t)
	// Nothing listens there: a preview must not dial.
	conn := map[string]any{"host": "127.0.0.1", "port": float64(freePort(t)), "dialErrorLimit": float64(0)}
	state, err := remoteCreate(t, s, remoteProps(conn, map[string]any{"create": "true"}), true)
	if err != nil {
		t.Fatal(err)
	}
	if !state["stdout"].IsComputed() || !state["stderr"].IsComputed() {
		t.Errorf("preview state %v: want unknown stdout and stderr", state)
	}
	// A connection not known yet (the member's address comes from another resource).
	in := props(map[string]any{"create": "true"})
	in["connection"] = computed()
	checkedIn, fails := checkRemote(t, s, in)
	if len(fails) != 0 || !checkedIn["connection"].IsSecret() || !checkedIn["connection"].SecretValue().Element.IsComputed() {
		t.Errorf("unknown connection: %v, %v; want a secret unknown and no failures", checkedIn, fails)
	}
	if _, err := s.Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: remoteURN, Properties: toStruct(t, checkedIn), Preview: true,
	}); err != nil {
		t.Errorf("preview with an unknown connection: %v", err)
	}
	if len(rec.logged()) != 0 {
		t.Errorf("logged %q in a preview", rec.logged())
	}
}

func TestRemoteCheck(t *testing.T) {
	s, _ := testServer(t)
	// Defaults are written into the connection and its proxy; the secrets are marked.
	conn := map[string]any{"host": "10.0.0.1", "password": "pw",
		"proxy": map[string]any{"host": "bastion", "privateKey": "k", "privateKeyPassword": "p"}}
	in := props(map[string]any{"create": "true", "connection": conn})
	got, fails := checkRemote(t, s, in)
	if len(fails) != 0 {
		t.Fatalf("failures %v", fails)
	}
	if !got["connection"].IsSecret() {
		t.Fatalf("connection %v: want secret", got["connection"])
	}
	c := got["connection"].SecretValue().Element.ObjectValue()
	p := c["proxy"].ObjectValue()
	for _, m := range []resource.PropertyMap{c, p} {
		if m["user"].StringValue() != "root" || m["port"].NumberValue() != 22 ||
			m["dialErrorLimit"].NumberValue() != 10 || m["perDialTimeout"].NumberValue() != 15 {
			t.Errorf("defaults missing: %v", m)
		}
	}
	if !c["password"].IsSecret() || !p["privateKey"].IsSecret() || !p["privateKeyPassword"].IsSecret() ||
		c["host"].IsSecret() {
		t.Errorf("secrets within the connection: %v", c)
	}
	// Checking its own output again changes nothing (the engine compares the two).
	again, _ := checkRemote(t, s, got)
	if !reflect.DeepEqual(again, got) {
		t.Errorf("check is not idempotent:\n%v\n%v", got, again)
	}
	// Set values are kept.
	got, _ = checkRemote(t, s, props(map[string]any{"connection": map[string]any{
		"host": "h", "user": "debian", "port": float64(2222), "dialErrorLimit": float64(-1), "perDialTimeout": float64(0)}}))
	c = got["connection"].SecretValue().Element.ObjectValue()
	if c["user"].StringValue() != "debian" || c["port"].NumberValue() != 2222 ||
		c["dialErrorLimit"].NumberValue() != -1 || c["perDialTimeout"].NumberValue() != 0 {
		t.Errorf("set values changed: %v", c)
	}

	for name, tc := range map[string]struct {
		in   map[string]any
		want []string
	}{
		"no connection": {map[string]any{"create": "x"}, []string{"connection"}},
		"no host":       {map[string]any{"connection": map[string]any{"port": float64(22)}}, []string{"connection.host"}},
		"bad values": {map[string]any{"connection": map[string]any{"host": "h", "port": float64(0),
			"dialErrorLimit": 1.5, "user": float64(1), "hots": "typo", "proxy": map[string]any{"port": float64(22)}},
			"interpreter": []any{"sh"}, "logging": "loud"},
			[]string{"logging", "interpreter", "connection.hots", "connection.user", "connection.port",
				"connection.dialErrorLimit", "connection.proxy.host"}},
		"proxy in proxy": {map[string]any{"connection": map[string]any{"host": "h",
			"proxy": map[string]any{"host": "b", "proxy": map[string]any{"host": "c"}}}},
			[]string{"connection.proxy.proxy"}},
	} {
		got, fails := checkRemote(t, s, props(tc.in))
		var keys []string
		for _, f := range fails {
			keys = append(keys, strings.SplitN(f, ": ", 2)[0])
		}
		if !reflect.DeepEqual(keys, tc.want) {
			t.Errorf("%s: failures %q, want on %q", name, fails, tc.want)
		}
		// Invalid inputs get no defaults (as upstream), but their secrets are still marked.
		if c, ok := got["connection"]; ok && (!c.IsSecret() || c.SecretValue().Element.ObjectValue()["perDialTimeout"].HasValue()) {
			t.Errorf("%s: connection %v, want it secret and without defaults", name, c)
		}
	}
}

func TestRemoteCancelEndsRun(t *testing.T) {
	srv := startSSHD(t)
	s, _ := testServer(t)
	errc := make(chan error, 1)
	go func() {
		_, err := remoteCreate(t, s, remoteProps(srv.connection(), map[string]any{"create": "sleep 5"}), false)
		errc <- err
	}()
	time.Sleep(500 * time.Millisecond)
	if _, err := s.Cancel(context.Background(), &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		wantErr(t, err, "context canceled")
	case <-time.After(3 * time.Second):
		t.Fatal("Cancel did not end the remote command")
	}
}
