package graphapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/patternai/whatsapp-node/retry"
)

// Defaults New fills in for zero Config fields.
const (
	DefaultBaseURL      = "https://graph.facebook.com"
	DefaultVersion      = "v25.0"
	DefaultMaxAttempts  = 4
	DefaultMaxRetryTime = time.Minute
	DefaultBaseBackoff  = 500 * time.Millisecond
	DefaultHTTPTimeout  = 30 * time.Second
)

// pairRateLimitSteps is how many base backoffs a pair rate limit (131056)
// waits at least: Meta allows about one message every 6 seconds to the same
// user, which is 12 steps of the default 500 ms.
const pairRateLimitSteps = 12

// responseLimit caps a JSON success answer; Graph answers are under a kilobyte.
const responseLimit = 1 << 20

// errNoToken fails every call of a client built without a token, so that a
// missing secret shows up as an error rather than as 190s from Meta.
var errNoToken = errors.New("graph api: no access token configured")

// Config configures a Client. Zero fields take the defaults above.
type Config struct {
	BaseURL string // GRAPH_API_BASE_URL; tests point it at graphapitest
	Version string // GRAPH_API_VERSION, such as "v25.0"
	Token   string // WHATSAPP_ACCESS_TOKEN, sent as a bearer token and never logged

	// HTTPClient should carry a timeout: it bounds each attempt, while
	// MaxRetryTime and the context bound the whole call.
	HTTPClient *http.Client

	MaxAttempts  int           // tries per request, the first included
	MaxRetryTime time.Duration // no retry starts after this much time in a call
	BaseBackoff  time.Duration // first retry wait, doubled on each further one; tests shrink it
	Logger       *slog.Logger  // retries and token failures; defaults to slog.Default()
}

// Client calls the WhatsApp Cloud API. It is safe for concurrent use.
type Client struct {
	baseURL      string
	version      string
	token        string
	http         *http.Client
	maxAttempts  int
	maxRetryTime time.Duration
	baseBackoff  time.Duration
	log          *slog.Logger
}

// New returns a Client for cfg, filling in defaults. A client without a token
// is still returned, so that wiring stays simple, but every call fails.
func New(cfg Config) *Client {
	c := &Client{
		baseURL:      strings.TrimRight(cmp.Or(cfg.BaseURL, DefaultBaseURL), "/"),
		version:      strings.Trim(cmp.Or(cfg.Version, DefaultVersion), "/"),
		token:        cfg.Token,
		http:         cfg.HTTPClient,
		maxAttempts:  cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts),
		maxRetryTime: cmp.Or(cfg.MaxRetryTime, DefaultMaxRetryTime),
		baseBackoff:  cmp.Or(cfg.BaseBackoff, DefaultBaseBackoff),
		log:          cfg.Logger,
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// endpoint builds a Graph URL from path segments, escaping each one.
func (c *Client) endpoint(segments ...string) string {
	escaped := make([]string, len(segments))
	for i, s := range segments {
		escaped[i] = url.PathEscape(s)
	}
	return c.baseURL + "/" + c.version + "/" + strings.Join(escaped, "/")
}

// request is everything needed to send one call again: the body is kept as
// bytes because a retry needs it a second time.
type request struct {
	op          string // names the call in logs
	method      string
	url         string
	body        []byte
	contentType string
	// send marks a message to a user, which must never be sent twice.
	send bool
}

// postJSON sends v as JSON and decodes the answer into out. send marks a
// message to a user (see request).
func (c *Client) postJSON(ctx context.Context, op, url string, send bool, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req := request{op: op, method: http.MethodPost, url: url, body: body, contentType: "application/json", send: send}
	return c.do(ctx, req, decodeJSON(out))
}

// decodeJSON returns a response handler that decodes a success answer into out.
func decodeJSON(out any) func(*http.Response) error {
	return func(resp *http.Response) error {
		if err := json.NewDecoder(io.LimitReader(resp.Body, responseLimit)).Decode(out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		return nil
	}
}

// do sends req until it succeeds, fails for good, or runs out of attempts,
// time or context, and hands a 2xx response to handle. It returns the last
// error. Transient failures are retried with the one retry policy (package
// retry), except that a send (a message to a user) is tried again only when
// Meta certainly did not take it (see Unsent): a second copy of a message
// that did arrive is exactly what this service promises never to send.
func (c *Client) do(ctx context.Context, req request, handle func(*http.Response) error) error {
	if c.token == "" {
		return errNoToken
	}
	_, err := retry.Do(ctx, retry.Policy{
		Attempts: c.maxAttempts,
		Initial:  c.baseBackoff,
		Max:      c.maxRetryTime,
		Elapsed:  c.maxRetryTime,
		Retryable: func(err error) bool {
			return IsTransient(err) && (!req.send || Unsent(err))
		},
		MinWait: func(err error) time.Duration {
			// Meta allows about one message every 6 seconds to one user.
			if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.Code == CodePairRateLimit {
				return pairRateLimitSteps * c.baseBackoff
			}
			return 0
		},
		OnRetry: func(attempt int, err error, wait time.Duration) {
			c.log.WarnContext(ctx, "graph api call failed, retrying",
				"op", req.op, "attempt", attempt, "wait", wait, "error", err.Error())
		},
	}, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, c.try(ctx, req, handle)
	})
	return err
}

// try sends req once. A failure before the request was written in full is
// wrapped as unsent.
func (c *Client) try(ctx context.Context, req request, handle func(*http.Response) error) error {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	httpReq, err := http.NewRequestWithContext(ctx, req.method, req.url, body)
	if err != nil {
		return err
	}
	httpReq.Header.Set("Authorization", "Bearer "+c.token)
	if req.contentType != "" {
		httpReq.Header.Set("Content-Type", req.contentType)
	}
	resp, err := c.http.Do(httpReq)
	if err != nil {
		if !wrote.Load() {
			return &unsentError{err}
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := parseError(resp, c.token)
		if apiErr.Code == CodeAccessToken {
			// Every call fails until someone renews the token, so this is
			// logged here, loudly, in addition to being returned.
			c.log.ErrorContext(ctx, "graph api rejected the access token: renew WHATSAPP_ACCESS_TOKEN",
				"op", req.op, "subcode", apiErr.Subcode, "fbtrace_id", apiErr.FBTraceID)
		}
		return apiErr
	}
	return handle(resp)
}
