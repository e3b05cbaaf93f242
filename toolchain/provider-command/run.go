package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
)

// The variables that carry the previous create/update's output into update and delete.
const (
	envPreviousStdout = "PULUMI_COMMAND_STDOUT"
	envPreviousStderr = "PULUMI_COMMAND_STDERR"
)

// errorOutputLimit bounds how much of the command's output an error message quotes (its end,
// where the reason for a failure usually is). Upstream quotes all of it.
const errorOutputLimit = 32 << 10

// previous is the stdout and stderr of the last create/update, from the state.
type previous struct{ stdout, stderr string }

// runCommand runs command with the interpreter, directory, environment and stdin of in,
// streaming the lines selected by in.Logging to logLine, and returns its stdout and stderr
// with one trailing newline removed (as upstream does).
func runCommand(ctx context.Context, command string, in inputs, prev previous,
	logLine func(string)) (stdout, stderr string, err error) {
	args := defaultInterpreter()
	if len(in.Interpreter) > 0 {
		args = append([]string{}, in.Interpreter...)
	}
	args = append(args, command)

	//nolint:gosec // Running the user's command is what this provider is for.
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)

	if in.Dir != nil {
		cmd.Dir = *in.Dir
	} else if cmd.Dir, err = os.Getwd(); err != nil {
		// The engine starts plugins in the project directory, so this is the program's directory.
		return "", "", err
	}

	// Later entries win in os/exec, so the program's environment overrides the provider's.
	cmd.Env = append(os.Environ(), sortedEnv(in.Environment)...)
	if in.addPreviousOutput() {
		if prev.stdout != "" {
			cmd.Env = append(cmd.Env, envPreviousStdout+"="+prev.stdout)
		}
		if prev.stderr != "" {
			cmd.Env = append(cmd.Env, envPreviousStderr+"="+prev.stderr)
		}
	}

	var outBuf, errBuf bytes.Buffer
	both := &tailBuffer{limit: errorOutputLimit}
	outLog, errLog := newLineLogger(logLine, in.logStdout()), newLineLogger(logLine, in.logStderr())
	stdin := ""
	if in.Stdin != nil {
		stdin = *in.Stdin
	}
	err = runWithPipes(ctx, cmd, stdin,
		io.MultiWriter(&outBuf, both, outLog), io.MultiWriter(&errBuf, both, errLog))
	outLog.flush()
	errLog.flush()
	if err != nil {
		return "", "", fmt.Errorf("%w: running %q:\n%s", err, command, both.String())
	}
	return cleanOutput(outBuf.String()), cleanOutput(errBuf.String()), nil
}

// runWithPipes runs cmd with its own pipes rather than os/exec's, so that a cancelled
// command returns at once: os/exec kills only the direct child, and its Wait then blocks until
// every process that inherited the output pipes (a VM started in the background, a sleep)
// has exited. Otherwise it behaves as upstream: the result is the command's exit status, and
// the output is read to the end, until the last process holding the pipes closes them.
func runWithPipes(ctx context.Context, cmd *exec.Cmd, stdin string, stdout, stderr io.Writer) error {
	outPipe, err := newOutputPipe(stdout)
	if err != nil {
		return err
	}
	defer outPipe.close()
	errPipe, err := newOutputPipe(stderr)
	if err != nil {
		return err
	}
	defer errPipe.close()
	cmd.Stdout, cmd.Stderr = outPipe.child, errPipe.child

	// Upstream gives no stdin (/dev/null) when stdin is empty.
	var stdinChild *os.File
	if stdin != "" {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		stdinChild = r
		cmd.Stdin = r
		go func() {
			// A command that exits without reading all of it makes this fail: that is fine.
			_, _ = io.WriteString(w, stdin)
			_ = w.Close()
		}()
		defer func() { _ = w.Close() }()
	}

	err = cmd.Start()
	// The child has its copies of the pipe ends; closing ours lets EOF arrive when it is done.
	outPipe.closeChild()
	errPipe.closeChild()
	if stdinChild != nil {
		_ = stdinChild.Close()
	}
	if err != nil {
		return err
	}
	err = cmd.Wait()
	outPipe.drain(ctx)
	errPipe.drain(ctx)
	return err
}

// outputPipe copies what a command writes to one of its output streams into dst.
type outputPipe struct {
	child, parent *os.File
	copied        chan struct{}
}

func newOutputPipe(dst io.Writer) (*outputPipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p := &outputPipe{child: w, parent: r, copied: make(chan struct{})}
	go func() {
		defer close(p.copied)
		_, _ = io.Copy(dst, r)
	}()
	return p, nil
}

func (p *outputPipe) closeChild() { _ = p.child.Close() }

// drain waits until every writer has closed the pipe and all output is copied, or until ctx
// ends (Cancel): then what is left is dropped.
func (p *outputPipe) drain(ctx context.Context) {
	select {
	case <-p.copied:
	case <-ctx.Done():
		_ = p.parent.Close()
		<-p.copied
	}
}

func (p *outputPipe) close() {
	_ = p.child.Close()
	_ = p.parent.Close()
	<-p.copied
}

func defaultInterpreter() []string {
	if runtime.GOOS == "windows" {
		return []string{"cmd", "/C"}
	}
	return []string{"/bin/sh", "-c"}
}

// cleanOutput drops one trailing newline, as upstream does, and replaces bytes that are not
// UTF-8: a Pulumi string must be valid UTF-8 to be sent to the engine at all.
func cleanOutput(s string) string {
	return strings.ToValidUTF8(strings.TrimSuffix(s, "\n"), "\uFFFD")
}

// tailBuffer keeps the last limit bytes written to it, from both of the command's streams.
type tailBuffer struct {
	mu      sync.Mutex
	limit   int
	buf     []byte
	dropped int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.dropped += over
		t.buf = append(t.buf[:0:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.ToValidUTF8(string(t.buf), "\uFFFD")
	if t.dropped > 0 {
		return fmt.Sprintf("[... %d bytes of earlier output omitted ...]\n%s", t.dropped, s)
	}
	return s
}
