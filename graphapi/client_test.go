package graphapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
	"github.com/patternai/whatsapp-node/internal/logtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const (
	phoneNumberID = "106540352242922"
	user          = "15551234567"
	userBSUID     = "US.13491208655302741918"
	inboundWamid  = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQTdFRjE5RkYzQTk1NjY0MEE2AA=="
)

// newClient returns a client for srv whose retries wait about a millisecond.
func newClient(srv *graphapitest.Server, cfg graphapi.Config) *graphapi.Client {
	cfg.BaseURL = srv.URL
	if cfg.Token == "" {
		cfg.Token = srv.Token
	}
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return graphapi.New(cfg)
}

// checkGolden compares a request body with testdata/golden/name.json, which
// holds it indented for reading: the body must be that JSON byte for byte,
// key order included, once compacted.
func checkGolden(t *testing.T, name string, body []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		var indented bytes.Buffer
		if err := json.Indent(&indented, body, "", "  "); err != nil {
			t.Fatalf("body of %s is not JSON: %v", name, err)
		}
		indented.WriteByte('\n')
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, indented.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	var want bytes.Buffer
	if err := json.Compact(&want, golden); err != nil {
		t.Fatalf("golden %s: %v", path, err)
	}
	if !bytes.Equal(body, want.Bytes()) {
		t.Errorf("body of %s:\n got %s\nwant %s", name, body, want.Bytes())
	}
}

func TestRequestsMatchGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kind graphapitest.Kind
		call func(context.Context, *graphapi.Client) error
	}{
		{"send_text", graphapitest.KindMessages, func(ctx context.Context, c *graphapi.Client) error {
			_, err := c.SendText(ctx, phoneNumberID, user, "Olá! <3 & \"quotes\" 👋🏽")
			return err
		}},
		{"send_text_reply", graphapitest.KindMessages, func(ctx context.Context, c *graphapi.Client) error {
			_, err := c.SendText(ctx, phoneNumberID, user, "Here you go.", graphapi.ReplyTo(inboundWamid))
			return err
		}},
		{"send_text_bsuid", graphapitest.KindMessages, func(ctx context.Context, c *graphapi.Client) error {
			_, err := c.SendText(ctx, phoneNumberID, userBSUID, "Hello, username user.")
			return err
		}},
		{"send_audio_voice", graphapitest.KindMessages, func(ctx context.Context, c *graphapi.Client) error {
			_, err := c.SendAudio(ctx, phoneNumberID, user, "1037543291543636", true, graphapi.ReplyTo(inboundWamid))
			return err
		}},
		{"send_audio_file", graphapitest.KindMessages, func(ctx context.Context, c *graphapi.Client) error {
			_, err := c.SendAudio(ctx, phoneNumberID, user, "1037543291543636", false)
			return err
		}},
		{"mark_read", graphapitest.KindMarkRead, func(ctx context.Context, c *graphapi.Client) error {
			return c.MarkRead(ctx, phoneNumberID, inboundWamid, false)
		}},
		{"mark_read_typing", graphapitest.KindMarkRead, func(ctx context.Context, c *graphapi.Client) error {
			return c.MarkRead(ctx, phoneNumberID, inboundWamid, true)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := graphapitest.NewServer(t)
			c := newClient(srv, graphapi.Config{Version: "v25.0"})
			if err := tt.call(t.Context(), c); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("fake got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Kind != tt.kind || r.Method != http.MethodPost || r.Path != "/v25.0/"+phoneNumberID+"/messages" {
				t.Errorf("request = %s %s (%s), want POST /v25.0/%s/messages (%s)", r.Method, r.Path, r.Kind, phoneNumberID, tt.kind)
			}
			if got := r.Header.Get("Authorization"); got != "Bearer "+graphapitest.Token {
				t.Errorf("Authorization = %q, want the bearer token", got)
			}
			if got := r.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			checkGolden(t, tt.name, r.Body)
		})
	}
}

func TestSendTextReturnsIDsInOrder(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	c := newClient(srv, graphapi.Config{})
	paragraph := strings.Repeat("Une phrase avec un emoji 🇫🇷 et des accents: é, à, ç. ", 40)
	body := strings.TrimSpace(strings.Repeat(paragraph+"\n\n", 4)) // about 9000 characters

	ids, err := c.SendText(t.Context(), phoneNumberID, user, body, graphapi.ReplyTo(inboundWamid))
	if err != nil {
		t.Fatalf("SendText: %v", err)
	}
	msgs := srv.Messages()
	if len(ids) < 3 || len(ids) != len(msgs) {
		t.Fatalf("SendText returned %d ids, fake got %d messages, want the same number, at least 3", len(ids), len(msgs))
	}
	var sent strings.Builder
	for i, m := range msgs {
		if ids[i] != m.ID {
			t.Errorf("ids[%d] = %q, want %q (the order sent)", i, ids[i], m.ID)
		}
		if wantReply := map[bool]string{true: inboundWamid}[i == 0]; m.ReplyTo != wantReply {
			t.Errorf("message %d replies to %q, want %q (only the first quotes)", i, m.ReplyTo, wantReply)
		}
		if m.PhoneNumberID != phoneNumberID || m.To != user {
			t.Errorf("message %d from %s to %s, want from %s to %s", i, m.PhoneNumberID, m.To, phoneNumberID, user)
		}
		sent.WriteString(m.Text)
	}
	if strings.Join(strings.Fields(sent.String()), "") != strings.Join(strings.Fields(body), "") {
		t.Error("the parts sent do not add up to the body")
	}
}

func TestSendTextFailsPartWay(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	// The second send is refused as outside the 24-hour window; the first
	// and third would go through.
	var sends atomic.Int32
	transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if sends.Add(1) == 2 {
			return &http.Response{
				StatusCode: http.StatusBadRequest,
				Header:     http.Header{"Content-Type": {"application/json"}},
				Body:       io.NopCloser(strings.NewReader(`{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"fbtrace_id":"AX"}}`)),
			}, nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	c := newClient(srv, graphapi.Config{HTTPClient: &http.Client{Transport: transport}})
	body := strings.Repeat("Sentence number one. ", 500) // three parts

	ids, err := c.SendText(t.Context(), phoneNumberID, user, body)
	if apiErr, ok := errors.AsType[*graphapi.APIError](err); !ok || apiErr.Code != graphapi.CodeOutsideWindow {
		t.Fatalf("SendText error = %v, want an APIError with code 131047", err)
	}
	if msgs := srv.Messages(); len(ids) != 1 || len(msgs) != 1 || ids[0] != msgs[0].ID {
		t.Errorf("SendText ids = %q, want the one sent before the failure (%d sent)", ids, len(msgs))
	}
	if n := sends.Load(); n != 2 {
		t.Errorf("client made %d sends, want 2: nothing after a permanent failure", n)
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	graphErr := func(code int) *graphapi.APIError {
		return &graphapi.APIError{Code: code, Type: "OAuthException", Message: "test"}
	}
	tests := []struct {
		name      string
		fail      func(*graphapitest.Server)
		attempts  int
		wantCode  int // 0: want success; -1: an error of unknown outcome
		transient bool
	}{
		{"throughput 130429 then success", func(s *graphapitest.Server) {
			s.FailNext(graphapitest.KindMessages, 2, http.StatusBadRequest, graphErr(graphapi.CodeThroughputLimit))
		}, 3, 0, false},
		{"503 with a Graph error then success", func(s *graphapitest.Server) {
			s.FailNext(graphapitest.KindMessages, 1, http.StatusServiceUnavailable, graphErr(graphapi.CodeAPIService))
		}, 2, 0, false},
		// A proxy's error page or a connection lost after the request was
		// written leaves unknown whether Meta took the message: a send is
		// not repeated, or the user could get it twice.
		{"503 from a proxy is not repeated", func(s *graphapitest.Server) {
			s.FailNext(graphapitest.KindMessages, 1, http.StatusServiceUnavailable, nil)
		}, 1, -1, true},
		{"dropped connection is not repeated", func(s *graphapitest.Server) {
			s.DropNext(graphapitest.KindMessages, 1)
		}, 1, -1, true},
		{"pair rate limit 131056 then success", func(s *graphapitest.Server) {
			s.FailNext(graphapitest.KindMessages, 1, http.StatusBadRequest, graphErr(graphapi.CodePairRateLimit))
		}, 2, 0, false},
		{"131047 is not retried", func(s *graphapitest.Server) {
			s.FailNext(graphapitest.KindMessages, 1, http.StatusBadRequest, graphErr(graphapi.CodeOutsideWindow))
		}, 1, graphapi.CodeOutsideWindow, false},
		{"190 is not retried", func(s *graphapitest.Server) {
			s.FailNext(graphapitest.KindMessages, 1, http.StatusUnauthorized, graphErr(graphapi.CodeAccessToken))
		}, 1, graphapi.CodeAccessToken, false},
		{"100 is not retried", func(s *graphapitest.Server) {
			s.FailNext(graphapitest.KindMessages, 1, http.StatusBadRequest, graphErr(graphapi.CodeInvalidParameter))
		}, 1, graphapi.CodeInvalidParameter, false},
		{"attempts are bounded", func(s *graphapitest.Server) {
			s.FailNext(graphapitest.KindMessages, 10, http.StatusBadRequest, graphErr(graphapi.CodeThroughputLimit))
		}, graphapi.DefaultMaxAttempts, graphapi.CodeThroughputLimit, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := graphapitest.NewServer(t)
			tt.fail(srv)
			c := newClient(srv, graphapi.Config{})

			id, err := c.SendAudio(t.Context(), phoneNumberID, user, "1037543291543636", true)
			if n := srv.Count(graphapitest.KindMessages); n != tt.attempts {
				t.Errorf("fake got %d attempts, want %d", n, tt.attempts)
			}
			if tt.wantCode == 0 {
				if err != nil || id == "" {
					t.Fatalf("SendAudio = %q, %v, want a message id", id, err)
				}
				if msgs := srv.Messages(); len(msgs) != 1 || msgs[0].ID != id {
					t.Errorf("fake holds %d messages, want the one sent", len(msgs))
				}
				return
			}
			if graphapi.Unsent(err) != (tt.wantCode > 0) {
				t.Errorf("Unsent(%v) = %v, want %v", err, !(tt.wantCode > 0), tt.wantCode > 0)
			}
			if tt.wantCode < 0 {
				return
			}
			apiErr, ok := errors.AsType[*graphapi.APIError](err)
			if !ok || apiErr.Code != tt.wantCode {
				t.Fatalf("SendAudio error = %v, want an APIError with code %d", err, tt.wantCode)
			}
			if got := graphapi.IsTransient(err); got != tt.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, got, tt.transient)
			}
		})
	}
}

func TestRetryWaitIsBoundedByContextAndMaxRetryTime(t *testing.T) {
	t.Parallel()
	throughput := &graphapi.APIError{Code: graphapi.CodeThroughputLimit, Message: "(#130429) Rate limit hit"}
	pairLimit := &graphapi.APIError{Code: graphapi.CodePairRateLimit, Message: "(#131056) pair rate limit hit"}
	tests := []struct {
		name     string
		err      *graphapi.APIError
		cfg      graphapi.Config
		deadline time.Duration // 0: none
		cancel   bool          // cancel the context when the client starts waiting
	}{
		// The first wait (30 to 60 minutes) would outlast the deadline, so the
		// client gives up at once instead of sleeping.
		{"deadline shorter than the wait", throughput,
			graphapi.Config{BaseBackoff: time.Hour, MaxRetryTime: 24 * time.Hour}, 10 * time.Minute, false},
		// A pair rate limit waits at least 12 base backoffs (12 hours here),
		// more than MaxRetryTime allows.
		{"pair rate limit wait longer than MaxRetryTime", pairLimit,
			graphapi.Config{BaseBackoff: time.Hour, MaxRetryTime: 2 * time.Hour}, 0, false},
		{"cancelled during the wait", throughput,
			graphapi.Config{BaseBackoff: time.Hour, MaxRetryTime: 24 * time.Hour}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := graphapitest.NewServer(t)
			srv.FailNext(graphapitest.KindMessages, 5, http.StatusBadRequest, tt.err)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.deadline > 0 {
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			tt.cfg.Logger = slog.New(slog.DiscardHandler)
			if tt.cancel {
				tt.cfg.Logger = slog.New(onRetryLog{cancel})
			}
			c := newClient(srv, tt.cfg)

			done := make(chan error, 1)
			go func() {
				_, err := c.SendText(ctx, phoneNumberID, user, "hi")
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				// Not a timing assertion: without the bound, the call would
				// sleep for an hour or more.
				t.Fatal("SendText still waiting to retry after a minute")
			}
			if apiErr, ok := errors.AsType[*graphapi.APIError](err); !ok || apiErr.Code != tt.err.Code {
				t.Errorf("SendText error = %v, want the APIError with code %d", err, tt.err.Code)
			}
			if n := srv.Count(graphapitest.KindMessages); n != 1 {
				t.Errorf("fake got %d attempts, want 1", n)
			}
		})
	}
}

// onRetryLog is a log handler that calls cancel when the client announces a
// retry, which it does just before it waits.
type onRetryLog struct{ cancel context.CancelFunc }

func (h onRetryLog) Enabled(context.Context, slog.Level) bool { return true }
func (h onRetryLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h onRetryLog) WithGroup(string) slog.Handler            { return h }
func (h onRetryLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "retrying") {
		h.cancel()
	}
	return nil
}

func TestTokenNeverLeaks(t *testing.T) {
	t.Parallel()
	const token = "EAAJZCsecretTOKENvalue1234567890"
	srv := graphapitest.NewServer(t, graphapitest.WithToken(token))
	var logs logtest.Buffer
	c := newClient(srv, graphapi.Config{Token: token, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	wrong := newClient(srv, graphapi.Config{Token: token + "-revoked", Logger: slog.New(slog.NewJSONHandler(&logs, nil))})

	srv.FailNext(graphapitest.KindMessages, graphapi.DefaultMaxAttempts, http.StatusServiceUnavailable, nil)
	_, errRetried := c.SendText(t.Context(), phoneNumberID, user, "hi")
	srv.FailNext(graphapitest.KindMessages, 1, http.StatusUnauthorized, &graphapi.APIError{
		Code: graphapi.CodeAccessToken, Type: "OAuthException", Message: "Malformed access token " + token,
	})
	_, errEchoed := c.SendText(t.Context(), phoneNumberID, user, "hi")
	errWrong := wrong.MarkRead(t.Context(), phoneNumberID, inboundWamid, true)
	srv.DropNext(graphapitest.KindMediaGet, graphapi.DefaultMaxAttempts)
	_, errDropped := c.DownloadMedia(t.Context(), "123", 1<<20, "")

	for _, err := range []error{errRetried, errEchoed, errWrong, errDropped} {
		if err == nil {
			t.Fatal("a call that should fail succeeded")
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("error %q contains the token", err)
		}
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("logs contain the token:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "renew WHATSAPP_ACCESS_TOKEN") || !strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("logs = %s, want an error asking to renew the token", logs.String())
	}
}

func TestNoTokenNoRequest(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	c := graphapi.New(graphapi.Config{BaseURL: srv.URL})
	if _, err := c.SendText(t.Context(), phoneNumberID, user, "hi"); err == nil {
		t.Error("SendText without a token succeeded, want an error")
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("fake got %d requests from a client without token, want 0", n)
	}
}

func TestUploadMedia(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	srv.FailNext(graphapitest.KindMediaUpload, 1, http.StatusInternalServerError, &graphapi.APIError{Code: graphapi.CodeAPIService})
	c := newClient(srv, graphapi.Config{})
	voice := append([]byte("OggS\x00\x02"), bytes.Repeat([]byte{0xff, 0x00}, 3000)...)

	id, err := c.UploadMedia(t.Context(), phoneNumberID, bytes.NewReader(voice), "audio/ogg; codecs=opus", "réponse.ogg")
	if err != nil {
		t.Fatalf("UploadMedia: %v", err)
	}
	m, ok := srv.Media(id)
	if !ok {
		t.Fatalf("UploadMedia = %q, which the fake does not hold", id)
	}
	if !bytes.Equal(m.Data, voice) || m.MIMEType != "audio/ogg" || m.FileType != "audio/ogg" || m.Filename != "réponse.ogg" || m.PhoneNumberID != phoneNumberID {
		t.Errorf("uploaded %d bytes, type %q, file type %q, name %q, from %q; want %d bytes of audio/ogg named réponse.ogg from %s",
			len(m.Data), m.MIMEType, m.FileType, m.Filename, m.PhoneNumberID, len(voice), phoneNumberID)
	}

	// Both attempts carried the same three parts, in Meta's order.
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("fake got %d requests, want 2 (a 500 and its retry)", len(reqs))
	}
	for _, r := range reqs {
		if r.Method != http.MethodPost || r.Path != "/"+graphapi.DefaultVersion+"/"+phoneNumberID+"/media" {
			t.Errorf("request = %s %s, want POST /%s/%s/media", r.Method, r.Path, graphapi.DefaultVersion, phoneNumberID)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+graphapitest.Token {
			t.Errorf("Authorization = %q, want the bearer token", got)
		}
		parts := readParts(t, r)
		want := []part{
			{name: "messaging_product", body: "whatsapp"},
			{name: "type", body: "audio/ogg"},
			{name: "file", filename: "réponse.ogg", contentType: "audio/ogg", body: string(voice)},
		}
		if len(parts) != len(want) {
			t.Fatalf("upload has %d parts, want %d", len(parts), len(want))
		}
		for i := range want {
			if parts[i] != want[i] {
				t.Errorf("part %d = {%s %q %s %d bytes}, want {%s %q %s %d bytes}", i,
					parts[i].name, parts[i].filename, parts[i].contentType, len(parts[i].body),
					want[i].name, want[i].filename, want[i].contentType, len(want[i].body))
			}
		}
	}
}

type part struct{ name, filename, contentType, body string }

func readParts(t *testing.T, r graphapitest.Request) []part {
	t.Helper()
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" {
		t.Fatalf("Content-Type = %q, want multipart/form-data", r.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(r.Body), params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		contentType := p.Header.Get("Content-Type")
		if p.FileName() == "" {
			contentType = "" // a plain field carries no type
		}
		parts = append(parts, part{p.FormName(), p.FileName(), contentType, string(body)})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestUnsentClassification checks which failed sends count as certainly not
// taken by Meta, the only ones a send may repeat.
func TestUnsentClassification(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: the dial is refused before anything is written.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	c := graphapi.New(graphapi.Config{BaseURL: closed, Token: graphapitest.Token, MaxAttempts: 1})
	_, err = c.SendAudio(t.Context(), phoneNumberID, user, "media-1", true)
	if err == nil || !graphapi.Unsent(err) {
		t.Errorf("send to a refused port: Unsent(%v) = false, want true", err)
	}

	// An upload is harmless to repeat, so a lost answer is retried.
	srv := graphapitest.NewServer(t)
	srv.DropNext(graphapitest.KindMediaUpload, 1)
	up := newClient(srv, graphapi.Config{})
	if _, err := up.UploadMedia(t.Context(), phoneNumberID, strings.NewReader("OggS"), "audio/ogg", "a.ogg"); err != nil {
		t.Errorf("UploadMedia after a dropped connection = %v, want a retry that succeeds", err)
	}
	if n := srv.Count(graphapitest.KindMediaUpload); n != 2 {
		t.Errorf("fake got %d uploads, want 2", n)
	}
}
