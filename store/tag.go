package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// Tags seal a reply part's identity (the inbound wamid and the part name)
// into the biz_opaque_callback_data of the message that carries it. Meta
// echoes that string in the part's status webhooks, which lets the webhook
// Confirm a send whose HTTP answer was lost. The wamid holds the sender's
// phone number, so it is encrypted (AES-256-GCM) rather than put in clear:
// the tag travels through Meta and may show in their logs and ours.
type Tags struct {
	aead cipher.AEAD
}

// tagPrefix marks our tags and their format, so a tag from another system or
// a later format is recognised and ignored.
const tagPrefix = "wn1."

// NewTags derives the sealing key from secret (the app secret), so that every
// instance of the service opens the tags of every other.
func NewTags(secret string) (*Tags, error) {
	if secret == "" {
		return nil, errors.New("tags: no secret")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("whatsapp-node reply tag v1"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Tags{aead: aead}, nil
}

// Seal returns the tag of part of the reply to id. A wamid of about 60
// characters makes a tag of about 130, well within Meta's 512.
func (t *Tags) Seal(id, part string) string {
	nonce := make([]byte, t.aead.NonceSize())
	rand.Read(nonce)
	sealed := t.aead.Seal(nonce, nonce, []byte(part+"\x00"+id), nil)
	return tagPrefix + base64.RawURLEncoding.EncodeToString(sealed)
}

// Open returns the message id and part sealed in tag; ok is false for a tag
// that is not ours or was altered. A nil Tags opens nothing.
func (t *Tags) Open(tag string) (id, part string, ok bool) {
	if t == nil || tag == "" {
		return "", "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tag, tagPrefix))
	if !strings.HasPrefix(tag, tagPrefix) || err != nil || len(b) < t.aead.NonceSize() {
		return "", "", false
	}
	n := t.aead.NonceSize()
	plain, err := t.aead.Open(nil, b[:n], b[n:], nil)
	if err != nil {
		return "", "", false
	}
	part, id, ok = strings.Cut(string(plain), "\x00")
	return id, part, ok
}
