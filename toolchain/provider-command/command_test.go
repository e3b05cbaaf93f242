package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

func create(t *testing.T, s *server, in resource.PropertyMap, preview bool) (string, resource.PropertyMap, error) {
	t.Helper()
	resp, err := s.Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: testURN, Properties: toStruct(t, in), Preview: preview,
	})
	if err != nil {
		return "", nil, err
	}
	return resp.GetId(), fromStruct(t, resp.GetProperties()), nil
}

func update(t *testing.T, s *server, olds, news resource.PropertyMap, preview bool) (resource.PropertyMap, error) {
	t.Helper()
	resp, err := s.Update(context.Background(), &pulumirpc.UpdateRequest{
		Id: "echo1234", Urn: testURN, Olds: toStruct(t, olds), News: toStruct(t, news), Preview: preview,
	})
	if err != nil {
		return nil, err
	}
	return fromStruct(t, resp.GetProperties()), nil
}

func TestCreateReturnsStdoutAndEchoesInputs(t *testing.T) {
	s, _ := testServer(t)
	in := props(map[string]any{
		"create":      "echo hello, $NAME!; echo warn >&2",
		"environment": map[string]any{"NAME": "world"},
	})
	id, state, err := create(t, s, in, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "echo") || len(id) != len("echo")+8 {
		t.Errorf("id %q: want the name plus 8 random hex digits", id)
	}
	want := props(map[string]any{
		"create":      "echo hello, $NAME!; echo warn >&2",
		"environment": map[string]any{"NAME": "world"},
		"stdout":      "hello, world!",
		"stderr":      "warn",
	})
	if !reflect.DeepEqual(state, want) {
		t.Errorf("state:\n got %v\nwant %v", state, want)
	}
}

func TestCreateWithoutCommandRunsNothing(t *testing.T) {
	s, _ := testServer(t)
	_, state, err := create(t, s, props(map[string]any{"delete": "true"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if str(t, state, "stdout") != "" || str(t, state, "stderr") != "" {
		t.Errorf("state %v: want empty stdout and stderr", state)
	}
}

func TestStdinReachesCommand(t *testing.T) {
	s, _ := testServer(t)
	_, state, err := create(t, s, props(map[string]any{"create": "tr a-z A-Z", "stdin": "user-data\n"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "USER-DATA" {
		t.Errorf("stdout %q, want USER-DATA", got)
	}
}

func TestInterpreterDirAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("echo \"$(pwd) $GREETING\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := testServer(t)
	// As the project runs its scripts: `/bin/sh <script>`, relative to dir.
	_, state, err := create(t, s, props(map[string]any{
		"create": "script", "interpreter": []any{"/bin/sh"}, "dir": dir,
		"environment": map[string]any{"GREETING": "hi"},
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := str(t, state, "stdout"), dir+" hi"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

func TestDefaultDirIsProviderWorkingDirectory(t *testing.T) {
	// The engine starts the plugin in the project directory; commands run there.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := testServer(t)
	_, state, err := create(t, s, props(map[string]any{"create": "pwd"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != wd {
		t.Errorf("stdout %q, want %q", got, wd)
	}
}

func TestFailingCommandFailsWithExitStatusAndOutput(t *testing.T) {
	s, _ := testServer(t)
	_, _, err := create(t, s, props(map[string]any{
		"create": "echo progress; echo 'disk full' >&2; exit 3",
	}), false)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"exit status 3", "disk full", "progress"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestErrorQuotesOnlyTheOutputTail(t *testing.T) {
	s, _ := testServer(t)
	_, _, err := create(t, s, props(map[string]any{
		"create": "head -c 100000 /dev/zero | tr '\\0' x; echo; echo last words >&2; exit 1",
	}), false)
	if err == nil {
		t.Fatal("want an error")
	}
	if len(err.Error()) > errorOutputLimit+500 || !strings.Contains(err.Error(), "last words") ||
		!strings.Contains(err.Error(), "bytes of earlier output omitted") {
		t.Errorf("error of %d bytes, want the tail with the omission noted", len(err.Error()))
	}
}

func TestPreviewRunsNothing(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	s, rec := testServer(t)
	in := props(map[string]any{"create": "touch " + marker + "; echo ran"})
	in["environment"] = computed() // previews carry unknown inputs
	_, state, err := create(t, s, in, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the create command ran during a preview")
	}
	for _, k := range []resource.PropertyKey{"stdout", "stderr", "environment"} {
		if !state[k].IsComputed() {
			t.Errorf("%s is %v, want unknown", k, state[k])
		}
	}
	if str(t, state, "create") != "touch "+marker+"; echo ran" {
		t.Errorf("create not echoed: %v", state)
	}

	old := props(map[string]any{"create": "true", "stdout": "old", "stderr": ""})
	news := props(map[string]any{"create": "touch " + marker})
	state, err = update(t, s, old, news, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the update ran during a preview")
	}
	if !state["stdout"].IsComputed() || !state["stderr"].IsComputed() {
		t.Errorf("update preview state %v: want unknown stdout and stderr", state)
	}
	if len(rec.logged()) != 0 {
		t.Errorf("logged %v during a preview", rec.logged())
	}
}

func TestUpdateRunsUpdateOrCreateWithPreviousOutput(t *testing.T) {
	s, _ := testServer(t)
	old := props(map[string]any{"create": "echo std, $PULUMI_COMMAND_STDOUT", "stdout": "std,", "stderr": ""})

	state, err := update(t, s, old, props(map[string]any{"create": "echo std, $PULUMI_COMMAND_STDOUT"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "std, std," {
		t.Errorf("create re-run: stdout %q, want %q", got, "std, std,")
	}

	state, err = update(t, s, old, props(map[string]any{
		"create": "echo std, $PULUMI_COMMAND_STDOUT", "addPreviousOutputInEnv": false,
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "std," {
		t.Errorf("addPreviousOutputInEnv=false: stdout %q, want %q", got, "std,")
	}
	if v := state["addPreviousOutputInEnv"]; !v.IsBool() || v.BoolValue() {
		t.Errorf("addPreviousOutputInEnv not echoed: %v", state)
	}

	state, err = update(t, s, old, props(map[string]any{"create": "echo created", "update": "echo updated"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "updated" {
		t.Errorf("with an update command: stdout %q, want updated", got)
	}

	state, err = update(t, s, old, props(map[string]any{"delete": "true"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "std," {
		t.Errorf("without a command: stdout %q, want the previous %q", got, "std,")
	}
}

func TestFailingUpdateFails(t *testing.T) {
	s, _ := testServer(t)
	old := props(map[string]any{"create": "true", "stdout": "", "stderr": ""})
	if _, err := update(t, s, old, props(map[string]any{"create": "exit 7"}), false); err == nil ||
		!strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("error %v, want exit status 7", err)
	}
}

func TestDeleteRunsDeleteWithPreviousOutputAndState(t *testing.T) {
	dir := t.TempDir()
	s, _ := testServer(t)
	state := props(map[string]any{
		"create": "echo created",
		"delete": "printf '%s|%s|%s|%s' \"$PULUMI_COMMAND_STDOUT\" \"$PULUMI_COMMAND_STDERR\" \"$VM\" \"$(cat)\" > out",
		"dir":    dir, "environment": map[string]any{"VM": "etcd-1"},
		"stdin":  secret("user-data"),
		"stdout": "created", "stderr": "careful",
	})
	if _, err := s.Delete(context.Background(), &pulumirpc.DeleteRequest{
		Id: "echo1234", Urn: testURN, Properties: toStruct(t, state),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "created|careful|etcd-1|user-data"; string(got) != want {
		t.Errorf("delete saw %q, want %q", got, want)
	}

	_, err = s.Delete(context.Background(), &pulumirpc.DeleteRequest{
		Id: "echo1234", Urn: testURN, Properties: toStruct(t, props(map[string]any{"delete": "exit 4"})),
	})
	if err == nil || !strings.Contains(err.Error(), "exit status 4") {
		t.Errorf("failing delete: error %v, want exit status 4", err)
	}

	// Without a delete command there is nothing to do.
	if _, err := s.Delete(context.Background(), &pulumirpc.DeleteRequest{
		Id: "echo1234", Urn: testURN, Properties: toStruct(t, props(map[string]any{"create": "false"})),
	}); err != nil {
		t.Errorf("delete without a command: %v", err)
	}
}

func TestSecretInputsStaySecret(t *testing.T) {
	in := props(map[string]any{"create": "wc -c"})
	in["stdin"] = secret("private key")

	s, _ := testServer(t)
	_, state, err := create(t, s, in, false)
	if err != nil {
		t.Fatal(err)
	}
	if !state["stdin"].IsSecret() || state["stdin"].SecretValue().Element.StringValue() != "private key" {
		t.Errorf("stdin %v: want the secret echoed", state["stdin"])
	}
	// Upstream: stdout/stderr do not inherit the inputs' secretness.
	if got := strings.TrimSpace(str(t, state, "stdout")); got != "11" {
		t.Errorf("stdout %q, want a plain 11", got)
	}

	s.secretOutputs = true // the -X main.secretStdout=true build
	_, state, err = create(t, s, in, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []resource.PropertyKey{"stdout", "stderr"} {
		if !state[k].IsSecret() {
			t.Errorf("%s %v: want secret", k, state[k])
		}
	}
	_, state, err = create(t, s, in, true)
	if err != nil {
		t.Fatal(err)
	}
	if v := state["stdout"]; !v.IsSecret() || !v.SecretValue().Element.IsComputed() {
		t.Errorf("preview stdout %v: want a secret unknown", v)
	}
	_, state, err = create(t, s, props(map[string]any{"create": "echo public"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if str(t, state, "stdout") != "public" {
		t.Errorf("without secret inputs stdout must stay plain: %v", state["stdout"])
	}
}

func TestLoggingModes(t *testing.T) {
	for mode, want := range map[string][]string{
		"":                {"out", "err"},
		"stdoutAndStderr": {"out", "err"},
		"stdout":          {"out"},
		"stderr":          {"err"},
		"none":            nil,
	} {
		t.Run(mode, func(t *testing.T) {
			s, rec := testServer(t)
			in := props(map[string]any{"create": "echo out; sleep 0.1; printf err >&2"})
			if mode != "" {
				in["logging"] = resource.NewStringProperty(mode)
			}
			if _, _, err := create(t, s, in, false); err != nil {
				t.Fatal(err)
			}
			if got := rec.logged(); !reflect.DeepEqual(got, want) {
				t.Errorf("logged %q, want %q", got, want)
			}
			for _, urn := range rec.urns {
				if urn != testURN {
					t.Errorf("logged for %q, want %q", urn, testURN)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	s, _ := testServer(t)
	check := func(in resource.PropertyMap) (resource.PropertyMap, []*pulumirpc.CheckFailure) {
		resp, err := s.Check(context.Background(), &pulumirpc.CheckRequest{Urn: testURN, News: toStruct(t, in)})
		if err != nil {
			t.Fatal(err)
		}
		return fromStruct(t, resp.GetInputs()), resp.GetFailures()
	}

	in := props(map[string]any{"create": "true", "environment": map[string]any{"A": "b"}})
	in["stdin"] = secret("s")
	in["dir"] = computed()
	got, fails := check(in)
	if len(fails) != 0 || !reflect.DeepEqual(got, in) {
		t.Errorf("valid inputs: got %v, failures %v; want them unchanged, no defaults added", got, fails)
	}

	_, fails = check(props(map[string]any{
		"logging": "loud", "interpreter": "sh", "assetPaths": []any{"*"}, "environment": map[string]any{"N": 1},
	}))
	var keys []string
	for _, f := range fails {
		keys = append(keys, f.GetProperty())
	}
	if want := []string{"logging", "interpreter", "environment.N", "assetPaths"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("failures on %v, want %v", keys, want)
	}

	if _, err := s.Check(context.Background(), &pulumirpc.CheckRequest{
		Urn: "urn:pulumi:test::proj::command:remote:CopyToRemote::x",
	}); err == nil || !strings.Contains(err.Error(), "command:remote:CopyToRemote") {
		t.Errorf("CopyToRemote: error %v, want unknown type", err)
	}
}

func TestReadReturnsStateUnchanged(t *testing.T) {
	s, _ := testServer(t)
	state := toStruct(t, props(map[string]any{"create": "x", "stdout": "y", "stderr": ""}))
	inputs := toStruct(t, props(map[string]any{"create": "x"}))
	resp, err := s.Read(context.Background(), &pulumirpc.ReadRequest{Id: "id1", Urn: testURN, Properties: state, Inputs: inputs})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetId() != "id1" || resp.GetProperties() != state || resp.GetInputs() != inputs {
		t.Errorf("read changed the state: %v", resp)
	}
}

func TestCancelKillsRunningCommand(t *testing.T) {
	s, _ := testServer(t)
	errc := make(chan error, 1)
	go func() {
		// sh does not exec its last command: killing sh leaves sleep holding the pipes.
		_, _, err := create(t, s, props(map[string]any{"create": "sleep 3"}), false)
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := s.Cancel(context.Background(), &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("a cancelled command must fail")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Cancel did not stop the command")
	}
}

func TestOutputIsReadUntilBackgroundProcessesCloseIt(t *testing.T) {
	// As upstream: the command's output is everything written until the last process that
	// inherited the pipes closes them, not only until the command itself exits.
	s, _ := testServer(t)
	_, state, err := create(t, s, props(map[string]any{"create": "(sleep 0.3; echo late) & echo early"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "early\nlate" {
		t.Errorf("stdout %q, want early and late", got)
	}
}

func TestNestedSecretInputs(t *testing.T) {
	s, _ := testServer(t)
	in := props(map[string]any{"create": "printf %s \"$TOKEN\""})
	in["environment"] = resource.NewObjectProperty(resource.PropertyMap{"TOKEN": secret("t0k3n")})
	_, state, err := create(t, s, in, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, state, "stdout"); got != "t0k3n" {
		t.Errorf("stdout %q: the secret's value must reach the command", got)
	}
	if env := state["environment"]; !env.IsObject() || !env.ObjectValue()["TOKEN"].IsSecret() {
		t.Errorf("environment %v: want TOKEN still secret", env)
	}
}
