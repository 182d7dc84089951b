package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/patternai/whatsapp-node/graphapi"
)

func TestSignPrintsHeader(t *testing.T) {
	var out bytes.Buffer
	if err := run(nil, "s3cret", strings.NewReader(`{"object":"whatsapp_business_account"}`), &out); err != nil {
		t.Fatal(err)
	}
	sig := graphapi.ComputeSignature([]byte(`{"object":"whatsapp_business_account"}`), "s3cret")
	if want := "X-Hub-Signature-256: " + sig + "\n"; out.String() != want {
		t.Errorf("sign printed %q, want %q", out.String(), want)
	}
	if err := run(nil, "", strings.NewReader("{}"), &out); err == nil {
		t.Error("sign without a secret = nil error, want one")
	}
}
