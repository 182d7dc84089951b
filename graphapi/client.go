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
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
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
}

// postJSON sends v as JSON and decodes the answer into out.
func (c *Client) postJSON(ctx context.Context, op, url string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req := request{op: op, method: http.MethodPost, url: url, body: body, contentType: "application/json"}
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

// do sends req until it succeeds, fails permanently, or runs out of attempts,
// time or context, and hands a 2xx response to handle. It returns the last
// error. Transient failures wait an exponentially growing, jittered time; a
// wait that would outlast the context's deadline or MaxRetryTime is not
// started, since it could only end in failure.
func (c *Client) do(ctx context.Context, req request, handle func(*http.Response) error) error {
	if c.token == "" {
		return errNoToken
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := c.try(ctx, req, handle)
		if err == nil || !IsTransient(err) || ctx.Err() != nil || attempt >= c.maxAttempts {
			return err
		}
		wait := c.backoff(attempt, err)
		if time.Since(start)+wait > c.maxRetryTime {
			return err
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return err
		}
		c.log.WarnContext(ctx, "graph api call failed, retrying",
			"op", req.op, "attempt", attempt, "wait", wait, "error", err.Error())
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
	}
}

// try sends req once.
func (c *Client) try(ctx context.Context, req request, handle func(*http.Response) error) error {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
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

// backoff is the wait before retry number attempt: the base doubled per
// earlier attempt, capped by MaxRetryTime, with the upper half jittered so
// that many senders hit by the same limit do not come back in step. A pair
// rate limit waits at least the time Meta allows between two messages to
// one user.
func (c *Client) backoff(attempt int, err error) time.Duration {
	d := c.baseBackoff << (attempt - 1)
	if d <= 0 || d > c.maxRetryTime {
		d = c.maxRetryTime
	}
	if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.Code == CodePairRateLimit {
		d = max(d, pairRateLimitSteps*c.baseBackoff)
	}
	return d/2 + rand.N(d/2+1)
}
