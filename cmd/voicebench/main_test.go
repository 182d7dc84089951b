package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestRun runs two quick rounds of each case at a fast pace: every way must
// deliver a voice note, and the report must give the medians and ratios.
func TestRun(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-answer", "long"}, {"-answer", "short"}, {"-input", "voice"}} {
		var out, errOut bytes.Buffer
		args = append(args, "-runs", "2", "-first", "20ms", "-per", "10ms", "-stt", "5ms",
			"-tts-base", "5ms", "-tts-char", "20us", "-graph", "1ms")
		if err := run(t.Context(), args, &out, &errOut); err != nil {
			t.Fatalf("run(%q): %v\n%s", args, err, errOut.String())
		}
		if !regexp.MustCompile(`median of 2: sequential \S+ \(1\.00\) pipeline \S+ \(\d\.\d\d\)( pipeline-gemini \S+ \(\d\.\d\d\))?\n$`).Match(out.Bytes()) {
			t.Errorf("run(%q) printed:\n%s\nwant a last line with the medians and the ratios", args, out.String())
		}
		if voice := args[1] == "voice"; strings.Contains(out.String(), "pipeline-gemini") != voice {
			t.Errorf("run(%q) printed:\n%s\nwant the pipeline with STT_ENGINE=gemini exactly for a voice note", args, out.String())
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-answer", "medium"}, {"-runs", "0"}, {"-input", "video"}, {"-nope"}} {
		var out, errOut bytes.Buffer
		if err := run(t.Context(), args, &out, &errOut); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		} else if strings.Contains(out.String(), "median") {
			t.Errorf("run(%q) measured anyway", args)
		}
	}
}
