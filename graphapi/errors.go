package graphapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
)

// Graph API error codes the client treats specially. Meta lists them under
// whatsapp/support/error-codes; every code not named here is permanent.
const (
	CodeAPIUnknown       = 1      // Temporary Meta-side failure.
	CodeAPIService       = 2      // Service temporarily unavailable.
	CodeAPITooManyCalls  = 4      // App-level rate limit.
	CodeInvalidParameter = 100    // Our request is malformed.
	CodeAccessToken      = 190    // Access token expired or revoked.
	CodeRateLimitHit     = 80007  // WhatsApp Business Account rate limit.
	CodeThroughputLimit  = 130429 // Too many messages per second from the number.
	CodeUndeliverable    = 131026 // The recipient cannot receive the message.
	CodeOutsideWindow    = 131047 // More than 24 hours since the user wrote; only a template can reach them.
	CodeMediaDownload    = 131052 // Meta could not download the user's media.
	CodeMediaUpload      = 131053 // Meta could not process uploaded media.
	CodePairRateLimit    = 131056 // Too many messages to the same user in a short time.
)

// errorBodyLimit caps how much of an error answer is read: Graph errors are a
// few hundred bytes, anything longer is not one.
const errorBodyLimit = 64 << 10

// redacted replaces the access token wherever it could leak into an error.
const redacted = "[REDACTED]"

// APIError is a non-2xx answer from the Graph API. It is named APIError rather
// than Error because Error is the webhook's error object (webhook.go).
//
// Message and Details are Meta's text with our access token blanked out, so the
// error can be logged as is.
type APIError struct {
	HTTPStatus int
	Code       int
	Subcode    int
	Type       string
	Message    string
	Details    string // error_data.details, often the most precise explanation
	FBTraceID  string // quote it when asking Meta support about the failure
}

// Error describes the failure with Meta's code, text and fbtrace id. It never
// holds the access token: parseError blanks it out.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph api: HTTP %d", e.HTTPStatus)
	if e.Code != 0 {
		fmt.Fprintf(&b, ", code %d", e.Code)
	}
	if e.Subcode != 0 {
		fmt.Fprintf(&b, ", subcode %d", e.Subcode)
	}
	if e.Type != "" {
		fmt.Fprintf(&b, ", %s", e.Type)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Details != "" {
		fmt.Fprintf(&b, " (%s)", e.Details)
	}
	if e.FBTraceID != "" {
		fmt.Fprintf(&b, " [fbtrace_id %s]", e.FBTraceID)
	}
	return b.String()
}

// Transient reports whether sending the same request again later can succeed:
// rate limits, Meta's temporary failures and 5xx answers. Everything else,
// including the 24-hour window (131047) and a bad token (190), needs a change
// on our side or the user's before a retry can help.
func (e *APIError) Transient() bool {
	switch e.Code {
	case CodeAPIUnknown, CodeAPIService, CodeAPITooManyCalls, CodeRateLimitHit,
		CodeThroughputLimit, CodePairRateLimit:
		return true
	case CodeInvalidParameter, CodeAccessToken, CodeUndeliverable, CodeOutsideWindow,
		CodeMediaUpload:
		return false
	}
	// A 429 without a Graph code comes from a proxy in front of Meta and means
	// what it says.
	return e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusTooManyRequests
}

// IsTransient reports whether err is worth retrying later: a transient
// *APIError, a timeout or a failed connection. A cancelled context is not:
// whoever cancelled it no longer wants the answer.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if apiErr, ok := errors.AsType[*APIError](err); ok {
		return apiErr.Transient()
	}
	// A certificate that does not verify will not verify on the next try.
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	if netErr, ok := errors.AsType[net.Error](err); ok && netErr.Timeout() {
		return true
	}
	// A *url.Error is what http.Client returns when no answer came back at
	// all: DNS, dial, TLS handshake or a connection closed mid-request.
	_, isURLErr := errors.AsType[*url.Error](err)
	_, isOpErr := errors.AsType[*net.OpError](err)
	return isURLErr || isOpErr
}

// unsentError is a failure that happened before the request was written in
// full (no connection, a refused dial, a failed handshake, a cancelled
// context): Meta cannot have acted on it.
type unsentError struct{ err error }

func (e *unsentError) Error() string { return e.err.Error() }
func (e *unsentError) Unwrap() error { return e.err }

// Unsent reports whether a failed call certainly did not reach Meta, so that
// a send can be tried again without risking a second copy: the request never
// left, or Meta answered with a Graph error (it refused it). A failure after
// the request was written (a timeout, a reset or EOF before the answer, an
// error page from a proxy) leaves the outcome unknown: Meta may have taken
// the message.
func Unsent(err error) bool {
	if _, ok := errors.AsType[*unsentError](err); ok {
		return true
	}
	apiErr, ok := errors.AsType[*APIError](err)
	return ok && apiErr.Code != 0
}

// errorBody is the envelope of every Graph API error.
type errorBody struct {
	Error struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      int    `json:"code"`
		Subcode   int    `json:"error_subcode"`
		FBTraceID string `json:"fbtrace_id"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
	} `json:"error"`
}

// parseError turns a non-2xx response into an *APIError. The body is read
// through a limit because a misbehaving proxy can answer with anything, and
// the token is blanked out in case Meta ever echoes it back.
func parseError(resp *http.Response, token string) *APIError {
	e := &APIError{HTTPStatus: resp.StatusCode}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	var body errorBody
	if json.Unmarshal(raw, &body) != nil {
		// Not a Graph error (an HTML page from a load balancer, an expired
		// media URL): the status is all there is to go on.
		e.Message = http.StatusText(resp.StatusCode)
		return e
	}
	redact := func(s string) string {
		if token == "" {
			return s
		}
		return strings.ReplaceAll(s, token, redacted)
	}
	e.Code = body.Error.Code
	e.Subcode = body.Error.Subcode
	e.Type = redact(body.Error.Type)
	e.Message = redact(body.Error.Message)
	e.Details = redact(body.Error.ErrorData.Details)
	e.FBTraceID = body.Error.FBTraceID
	return e
}
