package graphapi_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/patternai/whatsapp-node/graphapi"
)

func TestValidateSignature(t *testing.T) {
	t.Parallel()
	const secret = "app-secret"
	body := readFixture(t, "text_unicode_escapes.json")
	if !strings.Contains(string(body), `\u00e1`) || !strings.Contains(string(body), "@") {
		t.Fatal("fixture lost its unicode escapes or its '@'")
	}
	good := graphapi.ComputeSignature(body, secret)
	tests := []struct {
		name   string
		body   []byte
		header string
		secret string
		want   error
	}{
		{"good", body, good, secret, nil},
		{"missing", body, "", secret, graphapi.ErrNotSigned},
		{"bad hex", body, "sha256=zz", secret, graphapi.ErrInvalidSignature},
		{"no prefix", body, strings.TrimPrefix(good, "sha256="), secret, graphapi.ErrInvalidSignature},
		{"sha1 prefix", body, "sha1=" + strings.TrimPrefix(good, "sha256="), secret, graphapi.ErrInvalidSignature},
		{"truncated", body, good[:len(good)-2], secret, graphapi.ErrInvalidSignature},
		{"wrong secret", body, graphapi.ComputeSignature(body, "other"), secret, graphapi.ErrInvalidSignature},
		{"body changed", append([]byte(" "), body...), good, secret, graphapi.ErrInvalidSignature},
		// Re-encoding the JSON (unescaping \u00e1) changes the bytes and must
		// not validate: the signature covers the raw body only.
		{"re-encoded body", []byte(strings.ReplaceAll(string(body), `\u00e1`, "á")), good, secret, graphapi.ErrInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := graphapi.ValidateSignature(tt.body, tt.header, tt.secret); !errors.Is(err, tt.want) {
				t.Errorf("ValidateSignature = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestValidateSignatureRejectsWithoutSecret(t *testing.T) {
	t.Parallel()
	body := []byte(`{}`)
	// A signature made with the empty key is still refused: no secret, no service.
	if err := graphapi.ValidateSignature(body, graphapi.ComputeSignature(body, ""), ""); err == nil {
		t.Error("ValidateSignature with an empty secret = nil, want an error")
	}
}

func TestComputeSignatureKnownValue(t *testing.T) {
	t.Parallel()
	// HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a published test vector.
	got := graphapi.ComputeSignature([]byte("The quick brown fox jumps over the lazy dog"), "key")
	want := "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
	if got != want {
		t.Errorf("ComputeSignature = %s, want %s", got, want)
	}
}

func FuzzValidateSignature(f *testing.F) {
	f.Add([]byte(`{"object":"whatsapp_business_account"}`), "sha256=00", "secret")
	f.Add([]byte(`caf\u00e9 @`), "", "s")
	f.Fuzz(func(t *testing.T, body []byte, header, secret string) {
		err := graphapi.ValidateSignature(body, header, secret)
		if secret != "" && err == nil && header != graphapi.ComputeSignature(body, secret) &&
			!strings.EqualFold(header, graphapi.ComputeSignature(body, secret)) {
			t.Fatalf("accepted header %q that is not the body's signature", header)
		}
		if secret != "" {
			if err := graphapi.ValidateSignature(body, graphapi.ComputeSignature(body, secret), secret); err != nil {
				t.Fatalf("rejected the body's own signature: %v", err)
			}
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	for _, name := range []string{"text.json", "batch.json", "audio_voice.json", "status_failed.json", "username_user.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"type":"x"}]}}]}]}`))
	// Corners where decoders are known to differ: letter case of keys,
	// repeated keys, invalid UTF-8, nulls, numbers out of range, escapes.
	f.Add([]byte(`{"ENTRY":[{"Changes":[{"FIELD":"messages","value":{"Messages":[{"ID":"a","From":"1"}]}}]}]}`))
	f.Add([]byte(`{"object":"a","object":"b","entry":null}`))
	f.Add([]byte("{\"object\":\"\xff\xfe caf\xc3\"}"))
	f.Add([]byte(`{"entry":[{"changes":[{"value":{"statuses":[{"errors":[{"code":99999999999999999999}]}]}}]}]}`))
	f.Add([]byte(`{"entry":[{"changes":[{"value":{"messages":[{"location":{"latitude":1e400}}]}}]}]}`))
	f.Add([]byte(`{"object":"\ud83d\ude00\ud800 \u0000"}`))
	f.Add([]byte(`{"entry":[null,{"changes":[null,{"value":{"contacts":[null],"messages":[null,{"id":"a"}],"statuses":[null]}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := graphapi.ParsePayload(body)
		// ParsePayload uses a faster decoder than encoding/json: it must
		// accept, reject and decode exactly the same bodies.
		var want graphapi.Payload
		stdErr := json.Unmarshal(body, &want)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("ParsePayload error %v, encoding/json error %v", err, stdErr)
		}
		if err != nil {
			return
		}
		graphapi.DropNulls(&want)
		if !reflect.DeepEqual(*p, want) {
			t.Fatalf("ParsePayload = %+v, encoding/json = %+v", *p, want)
		}
		for _, e := range p.Entry {
			for _, c := range e.Changes {
				for _, m := range c.Value.Messages {
					c.Value.SenderKey(m)
					c.Value.ProfileName(m)
				}
			}
		}
	})
}
