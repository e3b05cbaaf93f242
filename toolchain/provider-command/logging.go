package main

import (
	"bytes"
	"context"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// logSink is the part of the engine's host client used here; tests substitute a recorder.
type logSink interface {
	Log(ctx context.Context, sev diag.Severity, urn resource.URN, msg string) error
	LogStatus(ctx context.Context, sev diag.Severity, urn resource.URN, msg string) error
}

// statusLogger returns a function that sends each output line to the engine as an info
// status message of urn, as upstream does: the line shows in the progress display next to
// the resource while the command runs (it is not kept in the final output).
func statusLogger(ctx context.Context, sink logSink, urn resource.URN) func(string) {
	if sink == nil {
		return func(string) {}
	}
	return func(line string) {
		// A log that cannot be delivered must not fail the command.
		_ = sink.LogStatus(ctx, diag.Info, urn, line)
	}
}

// maxLogLine bounds a line held back while waiting for its newline.
const maxLogLine = 64 << 10

// lineLogger is an io.Writer that hands complete lines to a log function. It never blocks
// the command on a long line (upstream's line scanner stops reading at 64 KiB, which
// stalls the command's output pipe); an over-long line is logged in pieces.
type lineLogger struct {
	mu      sync.Mutex
	log     func(string)
	enabled bool
	buf     []byte
}

func newLineLogger(log func(string), enabled bool) *lineLogger {
	return &lineLogger{log: log, enabled: enabled}
}

func (l *lineLogger) Write(p []byte) (int, error) {
	if !l.enabled {
		return len(p), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	for len(l.buf) >= maxLogLine {
		l.emit(l.buf[:maxLogLine])
		l.buf = l.buf[maxLogLine:]
	}
	// Keep the held-back part in its own small allocation, not the tail of a large one.
	l.buf = append([]byte(nil), l.buf...)
	return len(p), nil
}

// flush logs a last line that had no newline.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.enabled && len(l.buf) > 0 {
		l.emit(l.buf)
	}
	l.buf = nil
}

func (l *lineLogger) emit(line []byte) {
	l.log(strings.TrimSuffix(string(line), "\r"))
}
