package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
)

// remoteLogs is where a remote run reports to the engine.
type remoteLogs struct {
	// line receives the output lines selected by `logging`, and the dial retries, as status
	// messages.
	line func(string)
	// diagnostic receives messages that stay in the output (environment variables refused).
	diagnostic func(diag.Severity, string)
}

// runRemoteCommand runs command on in.Connection's host in one SSH session, as upstream does:
// the environment is sent with SSH "env" requests (setenv), a variable the server refuses
// fails the run, a refused PULUMI_COMMAND_STDOUT/STDERR is only warned about; stdin is sent
// when it is not empty; the result is the exit status, and stdout and stderr with one trailing
// newline removed. Cancel closes the connection, which ends the run at once (upstream waits;
// sshd does not kill a command that has no terminal, so it may go on).
func runRemoteCommand(ctx context.Context, command string, in remoteInputs, prev previous,
	logs remoteLogs) (stdout, stderr string, err error) {
	client, err := dialSSH(ctx, in.Connection, logs.line)
	if err != nil {
		return "", "", err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return "", "", fmt.Errorf("opening an SSH session on %s: %w", in.Connection.endpoint, err)
	}
	defer func() { _ = session.Close() }()

	for _, k := range sortedStringKeys(in.Environment) {
		if err := session.Setenv(k, in.Environment[k]); err != nil {
			logs.diagnostic(diag.Error, setenvRefused(k))
			return "", "", fmt.Errorf("could not set environment variable %q: %w", k, err)
		}
	}
	if in.addPreviousOutput() {
		for _, e := range []struct{ key, value string }{
			{envPreviousStdout, prev.stdout}, {envPreviousStderr, prev.stderr},
		} {
			if e.value == "" {
				continue
			}
			if err := session.Setenv(e.key, e.value); err != nil {
				logs.diagnostic(diag.Warning, setenvRefused(e.key))
			}
		}
	}
	if in.Stdin != nil && *in.Stdin != "" {
		session.Stdin = strings.NewReader(*in.Stdin)
	}

	var outBuf, errBuf bytes.Buffer
	both := &tailBuffer{limit: errorOutputLimit}
	outLog, errLog := newLineLogger(logs.line, in.logStdout()), newLineLogger(logs.line, in.logStderr())
	session.Stdout = io.MultiWriter(&outBuf, both, outLog)
	session.Stderr = io.MultiWriter(&errBuf, both, errLog)

	stop := context.AfterFunc(ctx, client.Close)
	err = session.Run(command)
	stop()
	outLog.flush()
	errLog.flush()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return "", "", fmt.Errorf("%w: running %q on %s:\n%s", err, command, in.Connection.endpoint, both.String())
	}
	return cleanOutput(outBuf.String()), cleanOutput(errBuf.String()), nil
}

// setenvRefused explains a refused environment variable, as upstream does.
func setenvRefused(key string) string {
	return fmt.Sprintf("The SSH server refused to set the environment variable '%s': it sets only "+
		"the variables its AcceptEnv setting names. Either list it there (sshd_config), or put the "+
		"variable into the command itself ('VAR=value command' in a Bash-like shell).", key)
}
