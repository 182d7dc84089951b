package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patternai/whatsapp-node/graphapi"
)

const testSecret = "s3cret"

func env(secret string) func(string) string {
	return func(name string) string {
		if name == "WHATSAPP_APP_SECRET" {
			return secret
		}
		return ""
	}
}

// sign runs the command and returns its stdout, stderr and error.
func sign(t *testing.T, secret, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(args, env(secret), strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestSignPrintsHeader(t *testing.T) {
	t.Parallel()
	body := `{"object":"whatsapp_business_account"}` + "\n"
	file := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "X-Hub-Signature-256: " + graphapi.ComputeSignature([]byte(body), testSecret) + "\n"
	for _, arg := range []string{file, "-"} {
		out, _, err := sign(t, testSecret, body, arg)
		if err != nil || out != want {
			t.Errorf("sign %s = %q, %v; want %q", arg, out, err, want)
		}
	}
}

func TestSignRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, secret string
		args         []string
		want         string // in the error or on stderr
	}{
		{"help", testSecret, []string{"-h"}, "usage: sign"},
		{"no file", testSecret, nil, "give one file"},
		{"two files", testSecret, []string{"a.json", "b.json"}, "give one file"},
		{"missing file", testSecret, []string{"no-such-file.json"}, "no such file"},
		{"no secret", "", []string{"-"}, "WHATSAPP_APP_SECRET is not set"},
		{"not a signature", testSecret, []string{"-check", "abc", "-"}, "sha256=<64 hex digits>"},
	}
	for _, tt := range tests {
		out, stderr, err := sign(t, tt.secret, "{}", tt.args...)
		if err == nil {
			t.Errorf("%s: sign %q = nil error, want one", tt.name, tt.args)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) && !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: sign %q = %v, stderr %q; want %q in either", tt.name, tt.args, err, stderr, tt.want)
		}
		if out != "" {
			t.Errorf("%s: sign %q printed %q, want nothing on stdout", tt.name, tt.args, out)
		}
	}
	if _, _, err := sign(t, testSecret, "", "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("sign -h = %v, want flag.ErrHelp (exit 0)", err)
	}
}

// TestSignCheck checks a signature made the right way and the three usual
// mistakes, and that the warning never shows the expected signature.
func TestSignCheck(t *testing.T) {
	t.Parallel()
	body := "{\n  \"object\": \"whatsapp_business_account\"\n}\n"
	good := graphapi.ComputeSignature([]byte(body), testSecret)
	tests := []struct {
		name, signature, body string
		match                 bool
	}{
		{"match", good, body, true},
		{"whole header line", "X-Hub-Signature-256: " + good, body, true},
		{"wrong secret", graphapi.ComputeSignature([]byte(body), "other"), body, false},
		{"curl -d dropped the line breaks", good, strings.ReplaceAll(body, "\n", ""), false},
		{"another file", graphapi.ComputeSignature([]byte(`{"object":"page"}`), testSecret), body, false},
	}
	for _, tt := range tests {
		out, stderr, err := sign(t, testSecret, tt.body, "-check", tt.signature, "-")
		if tt.match {
			if err != nil || out != "the signature matches\n" {
				t.Errorf("%s: sign -check = %q, %v; want a match", tt.name, out, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: sign -check = nil error, want a mismatch", tt.name)
			continue
		}
		for _, w := range []string{"WHATSAPP_APP_SECRET", "--data-binary"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: warning %q does not mention %s", tt.name, err, w)
			}
		}
		expected := strings.TrimPrefix(graphapi.ComputeSignature([]byte(tt.body), testSecret), "sha256=")
		for _, text := range []string{err.Error(), out, stderr} {
			if strings.Contains(text, expected) || strings.Contains(text, expected[:16]) {
				t.Errorf("%s: output reveals the expected signature: %q", tt.name, text)
			}
		}
	}
}
