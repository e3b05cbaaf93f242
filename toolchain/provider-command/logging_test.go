package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestLineLoggerSplitsLinesAndBoundsLongOnes(t *testing.T) {
	var got []string
	l := newLineLogger(func(s string) { got = append(got, s) }, true)
	for _, chunk := range []string{"one\r\ntw", "o\n\nthr", "ee"} {
		if _, err := l.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	l.flush()
	if want := []string{"one", "two", "", "three"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}

	got = nil
	long := strings.Repeat("x", maxLogLine+10)
	_, _ = l.Write([]byte(long))
	l.flush()
	if len(got) != 2 || len(got[0]) != maxLogLine || len(got[1]) != 10 {
		t.Errorf("a long line was logged as %d pieces", len(got))
	}
}
