package graphapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// SignatureHeader is the header in which Meta signs each webhook body.
const SignatureHeader = "X-Hub-Signature-256"

// Signature errors. Both mean the request is not from Meta and gets a 401.
var (
	ErrNotSigned        = errors.New("webhook not signed")
	ErrInvalidSignature = errors.New("webhook signature invalid")
	errNoSecret         = errors.New("no app secret configured")
)

// ComputeSignature returns the X-Hub-Signature-256 value Meta sends for body:
// "sha256=" and the hex HMAC-SHA256 of the raw bytes keyed by the app secret.
func ComputeSignature(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// ValidateSignature checks header against the raw body in constant time. An
// empty secret never validates: verification rejects by default.
func ValidateSignature(body []byte, header, secret string) error {
	if secret == "" {
		return errNoSecret
	}
	if header == "" {
		return ErrNotSigned
	}
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return ErrInvalidSignature
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return ErrInvalidSignature
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrInvalidSignature
	}
	return nil
}
