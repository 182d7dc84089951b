package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/internal/logtest"
	"github.com/patternai/whatsapp-node/reply"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/speech/speechtest"
)

// needTool returns the path of a program a test needs. Without it the test
// is skipped, except under CI=true, which installs it.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; CI must install the Debian package %s", name, pkg)
		}
		t.Skipf("%s is not installed (Debian package %s)", name, pkg)
	}
	return path
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// build builds cmd/local once per test run.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cmd-local-test-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "local")
		if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// voiceNoteLine matches the line the sandbox prints for a voice note.
var voiceNoteLine = regexp.MustCompile(`voice note \(([0-9.]+) s\) (\S+\.ogg)`)

// TestChat runs `local -chat` as a new user would: built, started in an
// empty folder with no environment at all, fed a text, a voice note, /reset
// and another text on a pipe. It checks the printed answers, that they were
// all awaited, that the conversation was remembered and then forgotten, and
// that each saved voice note is valid Ogg/Opus of the printed length.
func TestChat(t *testing.T) {
	t.Parallel()
	opusinfo := needTool(t, "opusinfo", "opus-tools")
	bin := build(t)
	dir := t.TempDir()
	voice, err := os.ReadFile("../../testdata/voice_note.ogg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.ogg"), voice, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-chat")
	cmd.Dir = dir
	// Only what finds programs and keeps the run on this machine.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PORT=0", "GCE_METADATA_HOST=127.0.0.1:9"}
	cmd.Stdin = strings.NewReader("Hello there!\n/voice hello.ogg\n/reset\nAnd again\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("local -chat: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	t.Logf("stdout:\n%s\nstderr:\n%s", out, &stderr)

	heard := strings.TrimRight(speechtest.DefaultTranscript, "?")
	want := []string{
		"You said: Hello there. This is the start of our conversation.",
		"You said: " + heard + ". I was sent 2 earlier messages of our conversation.",
		reply.DefaultNoticeReset,
		"You said: And again. This is the start of our conversation.",
	}
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Fatalf("stdout lacks %q after offset %d", w, at)
		}
		at += i + len(w)
	}
	for _, w := range []string{
		`WHATSAPP_APP_SECRET is not set: the sandbox uses "dev-secret"`,
		`WHATSAPP_VERIFY_TOKEN is not set: the sandbox uses "dev-token"`,
		"WHATSAPP_ACCESS_TOKEN is not set: the sandbox uses its Meta stand-in's token",
		"Meta: stand-in", "Gemini: stand-in", "Speech: stand-in",
	} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q", w)
		}
	}

	notes := voiceNoteLine.FindAllStringSubmatch(out, -1)
	if len(notes) != 3 {
		t.Fatalf("stdout names %d voice notes, want 3 (one per answer)", len(notes))
	}
	var audio [][]byte
	for _, n := range notes {
		path := filepath.Join(dir, n[2])
		if !strings.HasPrefix(n[2], filepath.Join(".media", "sandbox")+string(filepath.Separator)) {
			t.Errorf("voice note saved at %s, want it under .media/sandbox", n[2])
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("printed voice note: %v", err)
		}
		if out, err := exec.Command(opusinfo, path).CombinedOutput(); err != nil {
			t.Errorf("opusinfo %s: %v\n%s", n[2], err, out)
		}
		d, err := speech.OggDuration(data)
		printed, _ := strconv.ParseFloat(n[1], 64)
		if err != nil || fmt.Sprintf("%.1f", d.Seconds()) != fmt.Sprintf("%.1f", printed) {
			t.Errorf("voice note %s lasts %v (%v), printed %s s", n[2], d, err, n[1])
		}
		audio = append(audio, data)
	}
	// With espeak-ng each voice note reads its own answer; without it the
	// stand-in plays its recordings, and says so.
	if _, err := speechtest.LocalVoice(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("LocalVoice: %v; CI must install espeak-ng and opus-tools", err)
		}
		if !strings.Contains(stderr.String(), "plays its two recorded sentences whatever the answer") {
			t.Errorf("stderr does not say that the stand-in voice plays a recording")
		}
		return
	}
	if bytes.Equal(audio[0], audio[1]) || bytes.Equal(audio[0], audio[2]) {
		t.Errorf("voice notes for different answers are the same audio")
	}
}

func mapEnv(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

// TestConfiguredServicesLeftAlone runs the chat in process with Gemini and
// Speech configured by the environment (here at fakes of our own, which
// stand for the real services) and checks that the sandbox stands in only for
// what is not configured, or for what -sandbox names.
func TestConfiguredServicesLeftAlone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sandbox              string
		realGemini, realTTS  bool
		wantGemini, wantTalk string
	}{
		{"auto", true, true, "Gemini: real", "Speech: real"},
		{"meta,speech", true, false, "Gemini: real", "Speech: stand-in"},
		{"meta,gemini", false, true, "Gemini: stand-in", "Speech: real"},
	}
	for _, tt := range tests {
		t.Run(tt.sandbox, func(t *testing.T) {
			t.Parallel()
			llm := geminitest.NewServer(t)
			llm.Enqueue(geminitest.Answer{Text: "The configured Gemini answers."})
			sp := speechtest.NewServer(t)
			env := map[string]string{
				"GOOGLE_CLOUD_PROJECT":   "my-project",
				"GOOGLE_VERTEX_BASE_URL": llm.URL,
				"SPEECH_ENDPOINT":        sp.Addr,
				"TTS_ENDPOINT":           sp.Addr,
				"PORT":                   "0",
				"MEDIA_DIR":              t.TempDir(),
			}
			var stdout, stderr logtest.Buffer
			err := run(t.Context(), []string{"-chat", "-sandbox=" + tt.sandbox}, mapEnv(env),
				strings.NewReader("Hello\n"), &stdout, &stderr)
			if err != nil {
				t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
			}
			for _, w := range []string{"Meta: stand-in", tt.wantGemini, tt.wantTalk} {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			reqs := llm.Requests()
			if tt.realGemini {
				if len(reqs) != 1 || reqs[0].Project != "my-project" || reqs[0].UserText() != "Hello" {
					t.Errorf("configured Gemini got %+v, want one request for my-project with the message", reqs)
				}
				if !strings.Contains(stdout.String(), "The configured Gemini answers.") {
					t.Errorf("stdout lacks the configured Gemini's answer:\n%s", stdout.String())
				}
			} else {
				if len(reqs) != 0 {
					t.Errorf("configured Gemini got %d requests, want none: the stand-in answers", len(reqs))
				}
				if !strings.Contains(stdout.String(), "stand-in model") {
					t.Errorf("stdout lacks the stand-in model's answer:\n%s", stdout.String())
				}
			}
			synth := sp.SynthesizeRequests()
			if want := map[bool]int{true: 1, false: 0}[tt.realTTS]; len(synth) != want {
				t.Errorf("configured Text-to-Speech got %d requests, want %d", len(synth), want)
			}
		})
	}
}

// TestFixtures posts every body in testdata/webhooks, signed with the dev
// secret, to a sandbox run and checks that each is accepted, that the ones
// that ask something are answered (the media ones with the embedded files),
// and that none ends in the fallback.
func TestFixtures(t *testing.T) {
	t.Parallel()
	var stdout, stderr logtest.Buffer
	// Most fixtures come from one user, faster than the per-sender limit
	// lets one user be answered; this test wants every one answered.
	env := map[string]string{"PORT": "0", "MEDIA_DIR": t.TempDir(), "SENDER_LIMIT_PER_MINUTE": "0"}
	l, err := start(t.Context(), standIns{Meta: true, Gemini: true, Speech: true}, false, mapEnv(env), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../../testdata/webhooks/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(body))
		req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(body, devAppSecret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("POST %s = %d, want 200", filepath.Base(f), resp.StatusCode)
		}
	}
	// Two usual mistakes: another secret, and curl -d, which drops line
	// breaks after signing.
	text, err := os.ReadFile("../../testdata/webhooks/text.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ body, signature string }{
		{string(text), graphapi.ComputeSignature(text, "another-secret")},
		{strings.ReplaceAll(string(text), "\n", ""), graphapi.ComputeSignature(text, devAppSecret)},
	} {
		req, _ := http.NewRequest(http.MethodPost, l.url, strings.NewReader(bad.body))
		req.Header.Set(graphapi.SignatureHeader, bad.signature)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("badly signed webhook = %d, want 401", resp.StatusCode)
		}
		expected := graphapi.ComputeSignature([]byte(bad.body), devAppSecret)
		if strings.Contains(stderr.String(), expected[len("sha256="):][:16]) {
			t.Errorf("stderr reveals the expected signature")
		}
	}
	if n := strings.Count(stderr.String(), refusalHint); n != 2 {
		t.Errorf("stderr explains %d refusals, want 2:\n%s", n, stderr.String())
	}
	resp, err := http.Get(l.url + "webhook?hub.mode=subscribe&hub.verify_token=" + devVerifyToken + "&hub.challenge=42")
	if err != nil {
		t.Fatal(err)
	}
	challenge, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := l.close(); err != nil { // waits for every queued reply
		t.Fatalf("close: %v", err)
	}
	if string(challenge) != "42" {
		t.Errorf("handshake with the dev verify token answered %q, want 42", challenge)
	}

	out := stdout.String()
	t.Logf("stdout:\n%s", out)
	if strings.Contains(out, reply.DefaultFallback) {
		t.Errorf("a fixture ended in the fallback:\n%s\nstderr:\n%s", out, stderr.String())
	}
	for _, w := range []string{
		"You said: What's the weather like in Lisbon tomorrow",              // text.json
		"You said: " + strings.TrimRight(speechtest.DefaultTranscript, "?"), // the voice notes
		"You said: first", "You said: second", "You said: from Bruno", "You said: third", // batch.json
		"You sent a file (image/jpeg",      // image.json
		"You sent a file (application/pdf", // document.json
		reply.DefaultUnsupported,           // location.json, contacts.json, unsupported.json
	} {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q", w)
		}
	}
	if n := len(voiceNoteLine.FindAllString(out, -1)); n == 0 {
		t.Errorf("no voice note was printed")
	}
}

// TestRunRefuses checks the answers to bad input: help, stray arguments, an
// unknown service, and a real Meta without its secrets.
func TestRunRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		wantErr string // in the error, or else on stderr
	}{
		{[]string{"-h"}, "usage: local"},
		{[]string{"-chat", "extra"}, `unexpected argument "extra"`},
		{[]string{"-sandbox=meta,llm"}, `unknown service "llm"`},
		{[]string{"-sandbox=none"}, "WHATSAPP_APP_SECRET is required"},
	}
	for _, tt := range tests {
		var stdout, stderr logtest.Buffer
		env := map[string]string{"PORT": "0", "MEDIA_DIR": t.TempDir()}
		err := run(t.Context(), tt.args, mapEnv(env), strings.NewReader(""), &stdout, &stderr)
		if err == nil {
			t.Errorf("run(%q) = nil, want an error", tt.args)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) && !strings.Contains(stderr.String(), tt.wantErr) {
			t.Errorf("run(%q) = %v, stderr %q; want %q in either", tt.args, err, stderr.String(), tt.wantErr)
		}
	}
}
