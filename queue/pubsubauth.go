package queue

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/api/idtoken"
	"google.golang.org/api/option"
)

// ErrNoToken means a push request carried no bearer token.
var ErrNoToken = errors.New("push request has no bearer token")

// PushAuthConfig says which push requests PushAuth accepts.
type PushAuthConfig struct {
	// ServiceAccount is the email of the subscription's push service account
	// (gcloud --push-auth-service-account). It is required: anyone with a
	// Google account can mint a Google-signed token for any audience, so the
	// signature and audience alone prove nothing about the sender.
	ServiceAccount string
	// Audience is the token audience the subscription was given (gcloud
	// --push-auth-token-audience). Empty means the request's own URL, which
	// is what Pub/Sub uses when the subscription names no audience.
	Audience string
	// Options configure the HTTP client that fetches Google's signing
	// certificates; tests point it at a local server.
	Options []option.ClientOption
}

// PushAuth checks the OIDC token Pub/Sub attaches to each push request:
// signed by Google, unexpired, for our audience and our push service account.
type PushAuth struct {
	validator      *idtoken.Validator
	serviceAccount string
	audience       string
}

// NewPushAuth returns a PushAuth for cfg. It fetches no certificate until the
// first request.
func NewPushAuth(ctx context.Context, cfg PushAuthConfig) (*PushAuth, error) {
	if cfg.ServiceAccount == "" {
		return nil, errors.New("push auth: the push service account is required")
	}
	v, err := idtoken.NewValidator(ctx, cfg.Options...)
	if err != nil {
		return nil, fmt.Errorf("push auth: %w", err)
	}
	return &PushAuth{validator: v, serviceAccount: cfg.ServiceAccount, audience: cfg.Audience}, nil
}

// googleIssuers are the issuers of Google-signed ID tokens. The validator
// does not check the issuer itself.
var googleIssuers = map[string]bool{"accounts.google.com": true, "https://accounts.google.com": true}

// Verify returns nil when r carries a valid push token, ErrNoToken when it
// carries none, and an error saying what is wrong otherwise.
func (a *PushAuth) Verify(r *http.Request) error {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return ErrNoToken
	}
	audience := a.audience
	if audience == "" {
		// Pub/Sub pushes only to HTTPS endpoints, and Cloud Run terminates
		// TLS in front of the service, so r.TLS says nothing here.
		audience = "https://" + r.Host + r.URL.RequestURI()
	}
	if err := requireRS256(token); err != nil {
		return err
	}
	p, err := a.validator.Validate(r.Context(), token, audience)
	if err != nil {
		return fmt.Errorf("verify push token: %w", err)
	}
	if !googleIssuers[p.Issuer] {
		return fmt.Errorf("verify push token: issuer %q is not Google", p.Issuer)
	}
	if email, _ := p.Claims["email"].(string); email != a.serviceAccount {
		return fmt.Errorf("verify push token: email %q is not the push service account %q", email, a.serviceAccount)
	}
	if verified, _ := p.Claims["email_verified"].(bool); !verified {
		return errors.New("verify push token: email not verified")
	}
	return nil
}

// requireRS256 rejects a token not signed with RS256 before the validator
// sees it. Pub/Sub's tokens are always RS256; the validator would check an
// ES256 token against IAP's keys instead, and panics on a short ES256
// signature.
func requireRS256(token string) error {
	segment, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		return fmt.Errorf("verify push token: header: %w", err)
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &header); err != nil {
		return fmt.Errorf("verify push token: header: %w", err)
	}
	if header.Alg != "RS256" {
		return fmt.Errorf("verify push token: algorithm %q, want RS256", header.Alg)
	}
	return nil
}
