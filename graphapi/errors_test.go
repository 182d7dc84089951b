package graphapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		status    int
		want      APIError
		transient bool
	}{
		{"outside_window.json", 400, APIError{
			HTTPStatus: 400, Code: CodeOutsideWindow, Type: "OAuthException",
			Message:   "(#131047) Re-engagement message",
			Details:   "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
			FBTraceID: "AgQ4mV0XJ2pK8bZr1nT5uHc",
		}, false},
		{"token_expired.json", 401, APIError{
			HTTPStatus: 401, Code: CodeAccessToken, Subcode: 463, Type: "OAuthException",
			Message:   "Error validating access token: Session has expired on Friday, 14-Mar-25 02:00:00 PDT. The current time is Friday, 14-Mar-25 03:04:13 PDT.",
			FBTraceID: "A2b3c4D5e6F7g8H9i0JkLmN",
		}, false},
		{"throughput.json", 400, APIError{
			HTTPStatus: 400, Code: CodeThroughputLimit, Type: "OAuthException",
			Message: "(#130429) Rate limit hit", Details: "Cloud API message throughput has been reached.",
			FBTraceID: "Az8qW3eR5tY7uI9oP1aS2dF",
		}, true},
		{"pair_rate_limit.json", 400, APIError{
			HTTPStatus: 400, Code: CodePairRateLimit, Type: "OAuthException",
			Message:   "(#131056) (Business Account, Consumer Account) pair rate limit hit",
			Details:   "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
			FBTraceID: "AbXy12Cd34Ef56Gh78Ij90K",
		}, true},
		{"invalid_parameter.json", 400, APIError{
			HTTPStatus: 400, Code: CodeInvalidParameter, Type: "OAuthException",
			Message: "(#100) Invalid parameter", Details: "Param text['body'] must be at most 4096 characters long.",
			FBTraceID: "AQ7sD9fG1hJ3kL5zX7cV9bN",
		}, false},
		{"unknown.json", 500, APIError{
			HTTPStatus: 500, Code: CodeAPIUnknown, Subcode: 99, Type: "OAuthException",
			Message: "An unknown error has occurred.", FBTraceID: "A1nK2mL3oP4qR5sT6uV7wX8",
		}, true},
		{"bad_gateway.html", 502, APIError{HTTPStatus: 502, Message: "Bad Gateway"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join("testdata", "errors", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got := parseError(response(tt.status, body), "secret-token")
			if *got != tt.want {
				t.Errorf("parseError(%s) = %+v, want %+v", tt.file, *got, tt.want)
			}
			if got.Transient() != tt.transient {
				t.Errorf("parseError(%s).Transient() = %v, want %v", tt.file, got.Transient(), tt.transient)
			}
			if s := got.Error(); !strings.Contains(s, tt.want.Message) || (tt.want.FBTraceID != "" && !strings.Contains(s, tt.want.FBTraceID)) {
				t.Errorf("Error() = %q, want message and fbtrace id in it", s)
			}
		})
	}
}

func TestParseErrorReadsAtMostTheLimit(t *testing.T) {
	t.Parallel()
	body := &countingReader{r: bytes.NewReader(bytes.Repeat([]byte("x"), 10*errorBodyLimit))}
	resp := &http.Response{StatusCode: 503, Body: io.NopCloser(body)}
	got := parseError(resp, "")
	if body.n > errorBodyLimit {
		t.Errorf("parseError read %d bytes, want at most %d", body.n, errorBodyLimit)
	}
	if got.HTTPStatus != 503 || !got.Transient() {
		t.Errorf("parseError(503 junk) = %+v, want a transient HTTP 503", got)
	}
}

func TestParseErrorRedactsToken(t *testing.T) {
	t.Parallel()
	const token = "EAAGm0PX4ZCpsBAKZCxyz"
	body := `{"error":{"message":"Malformed access token ` + token + `","type":"OAuthException","code":190,"error_data":{"details":"token ` + token + `"},"fbtrace_id":"X"}}`
	got := parseError(response(401, []byte(body)), token)
	if s := got.Error(); strings.Contains(s, token) || !strings.Contains(s, redacted) {
		t.Errorf("Error() = %q, want the token redacted", s)
	}
}

func TestTransientByCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status, code int
		want         bool
	}{
		{400, CodeThroughputLimit, true},
		{400, CodePairRateLimit, true},
		{500, CodeAPIUnknown, true},
		{503, CodeAPIService, true},
		{400, CodeAPITooManyCalls, true},
		{400, CodeRateLimitHit, true},
		{400, CodeOutsideWindow, false},
		{400, CodeUndeliverable, false},
		{400, CodeMediaUpload, false},
		{400, CodeInvalidParameter, false},
		{401, CodeAccessToken, false},
		{500, CodeInvalidParameter, false}, // the code decides over the status
		{400, 131051, false},               // unknown codes are permanent
		{503, 0, true},
		{429, 0, true},
		{404, 0, false},
	}
	for _, tt := range tests {
		e := &APIError{HTTPStatus: tt.status, Code: tt.code}
		if got := e.Transient(); got != tt.want {
			t.Errorf("APIError{HTTP %d, code %d}.Transient() = %v, want %v", tt.status, tt.code, got, tt.want)
		}
	}
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"canceled", context.Canceled, false},
		{"wrapped canceled", &url.Error{Op: "Post", URL: "https://graph", Err: context.Canceled}, false},
		{"deadline", fmt.Errorf("send text: %w", context.DeadlineExceeded), true},
		{"transient api error", fmt.Errorf("send text: %w", &APIError{HTTPStatus: 400, Code: CodeThroughputLimit}), true},
		{"permanent api error", fmt.Errorf("send text: %w", &APIError{HTTPStatus: 400, Code: CodeOutsideWindow}), false},
		{"connection refused", &url.Error{Op: "Post", URL: "https://graph", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"eof", &url.Error{Op: "Post", URL: "https://graph", Err: io.EOF}, true},
		{"unexpected eof mid-body", fmt.Errorf("read media: %w", io.ErrUnexpectedEOF), true},
		{"timeout", &url.Error{Op: "Post", URL: "https://graph", Err: timeoutError{}}, true},
		{"checksum", ErrChecksumMismatch, false},
		{"plain", errors.New("answer has no message id"), false},
	}
	for _, tt := range tests {
		if got := IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%s: %v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func response(status int, body []byte) *http.Response {
	return &http.Response{StatusCode: status, Body: io.NopCloser(bytes.NewReader(body))}
}
