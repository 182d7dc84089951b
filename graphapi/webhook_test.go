package graphapi_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"unsafe"

	"github.com/patternai/whatsapp-node/graphapi"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "webhooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// onlyMessage parses a fixture that holds a single message and returns it
// with its change's value.
func onlyMessage(t *testing.T, name string) (*graphapi.Value, graphapi.Message) {
	t.Helper()
	p, err := graphapi.ParsePayload(readFixture(t, name))
	if err != nil {
		t.Fatalf("ParsePayload(%s): %v", name, err)
	}
	if len(p.Entry) != 1 || len(p.Entry[0].Changes) != 1 || len(p.Entry[0].Changes[0].Value.Messages) != 1 {
		t.Fatalf("%s: want exactly one message, got %+v", name, p)
	}
	v := &p.Entry[0].Changes[0].Value
	return v, *v.Messages[0]
}

func TestParseMessageFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file  string
		typ   string
		check func(t *testing.T, m graphapi.Message)
	}{
		{"text.json", "text", func(t *testing.T, m graphapi.Message) {
			if m.Text == nil || m.Text.Body != "What's the weather like in Lisbon tomorrow?" {
				t.Errorf("Text = %+v", m.Text)
			}
		}},
		{"audio_voice.json", "audio", func(t *testing.T, m graphapi.Message) {
			a := m.Audio
			if a == nil || a.ID != "1308761640948516" || !a.Voice || a.MIMEType != "audio/ogg; codecs=opus" ||
				a.SHA256 != "V2Y4oIUbYVUCLlVfZE8roRXe2BJZGATohkb9DLC3Cqo=" {
				t.Errorf("Audio = %+v", a)
			}
		}},
		{"image.json", "image", func(t *testing.T, m graphapi.Message) {
			if m.Image == nil || m.Image.ID != "2754859441498128" || m.Image.Caption != "Is this plant healthy?" || m.Image.MIMEType != "image/jpeg" {
				t.Errorf("Image = %+v", m.Image)
			}
		}},
		{"document.json", "document", func(t *testing.T, m graphapi.Message) {
			if m.Document == nil || m.Document.Filename != "invoice.pdf" || m.Document.MIMEType != "application/pdf" {
				t.Errorf("Document = %+v", m.Document)
			}
		}},
		{"sticker.json", "sticker", func(t *testing.T, m graphapi.Message) {
			if m.Sticker == nil || m.Sticker.ID != "1010101010101010" || m.Sticker.MIMEType != "image/webp" {
				t.Errorf("Sticker = %+v", m.Sticker)
			}
		}},
		{"location.json", "location", func(t *testing.T, m graphapi.Message) {
			l := m.Location
			if l == nil || l.Latitude != 38.7223 || l.Longitude != -9.1393 || l.Name != "Praça do Comércio" {
				t.Errorf("Location = %+v", l)
			}
		}},
		{"contacts.json", "contacts", func(t *testing.T, m graphapi.Message) {
			if len(m.Contacts) != 1 || m.Contacts[0].Name.FormattedName != "John Smith" ||
				len(m.Contacts[0].Phones) != 1 || m.Contacts[0].Phones[0].WaID != "19405551234" {
				t.Errorf("Contacts = %+v", m.Contacts)
			}
		}},
		{"interactive_button_reply.json", "interactive", func(t *testing.T, m graphapi.Message) {
			i := m.Interactive
			if i == nil || i.Type != "button_reply" || i.ButtonReply == nil || i.ButtonReply.Title != "Yes, book it" || i.ButtonReply.ID != "confirm-yes" {
				t.Errorf("Interactive = %+v", i)
			}
			if m.Context == nil || m.Context.ID != "wamid.HBgLMTU1NTA3ODM4ODEVAgARGBI1QkY5" {
				t.Errorf("Context = %+v", m.Context)
			}
		}},
		{"interactive_list_reply.json", "interactive", func(t *testing.T, m graphapi.Message) {
			i := m.Interactive
			if i == nil || i.Type != "list_reply" || i.ListReply == nil || i.ListReply.Title != "7 pm" || i.ListReply.Description != "Tomorrow, table for two" {
				t.Errorf("Interactive = %+v", i)
			}
		}},
		{"button.json", "button", func(t *testing.T, m graphapi.Message) {
			if m.Button == nil || m.Button.Text != "Stop promotions" || m.Button.Payload != "STOP_PROMOTIONS" {
				t.Errorf("Button = %+v", m.Button)
			}
		}},
		{"reaction.json", "reaction", func(t *testing.T, m graphapi.Message) {
			if m.Reaction == nil || m.Reaction.Emoji != "👍" || m.Reaction.MessageID != "wamid.HBgLMTU1NTA3ODM4ODEVAgARGBI1QkY4" {
				t.Errorf("Reaction = %+v", m.Reaction)
			}
		}},
		{"reaction_removed.json", "reaction", func(t *testing.T, m graphapi.Message) {
			if m.Reaction == nil || m.Reaction.Emoji != "" || m.Reaction.MessageID == "" {
				t.Errorf("Reaction = %+v", m.Reaction)
			}
		}},
		{"unsupported.json", "unsupported", func(t *testing.T, m graphapi.Message) {
			if len(m.Errors) != 1 || m.Errors[0].Code != 131051 || m.Errors[0].ErrorData.Details == "" {
				t.Errorf("Errors = %+v", m.Errors)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			v, m := onlyMessage(t, tt.file)
			if m.Type != tt.typ {
				t.Errorf("Type = %q, want %q", m.Type, tt.typ)
			}
			if m.From != "16505551234" || m.Timestamp != "1764115200" || m.ID == "" {
				t.Errorf("From, Timestamp, ID = %q, %q, %q", m.From, m.Timestamp, m.ID)
			}
			if v.Metadata.PhoneNumberID != "106540352242922" {
				t.Errorf("PhoneNumberID = %q", v.Metadata.PhoneNumberID)
			}
			if got := v.SenderKey(&m); got != "16505551234" {
				t.Errorf("SenderKey = %q, want the wa_id", got)
			}
			if got := v.ProfileName(&m); got != "Ana Souza" {
				t.Errorf("ProfileName = %q, want %q", got, "Ana Souza")
			}
			tt.check(t, m)
		})
	}
}

func TestParseStatusFixtures(t *testing.T) {
	t.Parallel()
	for _, status := range []string{"sent", "delivered", "read", "failed"} {
		p, err := graphapi.ParsePayload(readFixture(t, "status_"+status+".json"))
		if err != nil {
			t.Fatal(err)
		}
		v := p.Entry[0].Changes[0].Value
		if len(v.Messages) != 0 || len(v.Statuses) != 1 {
			t.Fatalf("status_%s: messages %d, statuses %d; want 0, 1", status, len(v.Messages), len(v.Statuses))
		}
		s := v.Statuses[0]
		if s.Status != status || s.RecipientID != "16505551234" || s.ID == "" {
			t.Errorf("status_%s: got %+v", status, s)
		}
		wantErrors := 0
		if status == "failed" {
			wantErrors = 1
			if len(s.Errors) == 1 && s.Errors[0].Code != 131047 {
				t.Errorf("failed status code = %d, want 131047", s.Errors[0].Code)
			}
		}
		if len(s.Errors) != wantErrors {
			t.Errorf("status_%s: %d errors, want %d", status, len(s.Errors), wantErrors)
		}
	}
}

func TestParseErrorsOnly(t *testing.T) {
	t.Parallel()
	p, err := graphapi.ParsePayload(readFixture(t, "errors_only.json"))
	if err != nil {
		t.Fatal(err)
	}
	v := p.Entry[0].Changes[0].Value
	if len(v.Messages)+len(v.Statuses) != 0 || len(v.Errors) != 1 || v.Errors[0].Code != 131000 {
		t.Errorf("errors-only value = %+v", v)
	}
}

func TestParseBatch(t *testing.T) {
	t.Parallel()
	p, err := graphapi.ParsePayload(readFixture(t, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ phoneNumberID, sender, typ string }
	var got []seen
	statuses := 0
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			statuses += len(c.Value.Statuses)
			for _, m := range c.Value.Messages {
				got = append(got, seen{c.Value.Metadata.PhoneNumberID, c.Value.SenderKey(m), m.Type})
			}
		}
	}
	want := []seen{
		{"106540352242922", "16505551234", "text"},
		{"106540352242922", "16505551234", "text"},
		{"106540352242922", "447700900123", "text"},
		{"106540352242923", "16505551234", "audio"},
		{"106540352242923", "16505551234", "text"},
	}
	if len(p.Entry) != 2 || statuses != 1 || len(got) != len(want) {
		t.Fatalf("entries %d, statuses %d, messages %v; want 2, 1, %v", len(p.Entry), statuses, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestSenderKeyWithoutPhoneNumber(t *testing.T) {
	t.Parallel()
	v, m := onlyMessage(t, "username_user.json")
	if m.From != "" {
		t.Fatalf("fixture From = %q, want empty", m.From)
	}
	if got := v.SenderKey(&m); got != "US.13491208655302741918" {
		t.Errorf("SenderKey = %q, want the user_id", got)
	}
	if got := v.ProfileName(&m); got != "ana.s" {
		t.Errorf("ProfileName = %q, want %q", got, "ana.s")
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for _, body := range []string{``, `{`, `[]`, `"x"`, `{"entry":"nope"}`, `{"entry":[{"changes":[{"value":{"messages":{}}}]}]}`} {
		if _, err := graphapi.ParsePayload([]byte(body)); err == nil {
			t.Errorf("ParsePayload(%q) = nil error, want one", body)
		}
	}
}

// TestPeerFixtures parses every webhook body another project collected: all
// must parse, and every message must have an id and a sender key.
func TestPeerFixtures(t *testing.T) {
	t.Parallel()
	for name, body := range peerFixtures(t) {
		p, err := graphapi.ParsePayload(body)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.Object != "whatsapp_business_account" || len(p.Entry) == 0 {
			t.Errorf("%s: object %q with %d entries", name, p.Object, len(p.Entry))
		}
		for _, e := range p.Entry {
			for _, c := range e.Changes {
				for _, m := range c.Value.Messages {
					if m.ID == "" || m.Type == "" || c.Value.SenderKey(m) == "" {
						t.Errorf("%s: message id %q type %q sender %q", name, m.ID, m.Type, c.Value.SenderKey(m))
					}
				}
			}
		}
	}
}

// peerFixtures reads testdata/peer/pywa: each file maps case names
// to complete webhook bodies. It fails when the folder is missing, so the
// test cannot pass vacuously.
func peerFixtures(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "peer", "pywa", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no peer fixtures found (%v)", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cases map[string]json.RawMessage
		if err := json.Unmarshal(b, &cases); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for name, body := range cases {
			out[filepath.Base(f)+"/"+name] = body
		}
	}
	if len(out) != 74 {
		keys := make([]string, 0, len(out))
		for k := range out {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Fatalf("found %d peer fixtures, want 74: %v", len(out), keys)
	}
	return out
}

// TestParseStringsReferToBody checks that the payload's strings are taken
// from the body rather than copied (the intake's allocations), and that a
// string with escapes, which cannot be, still decodes whole.
func TestParseStringsReferToBody(t *testing.T) {
	body := []byte(`{"entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"106540352242922"},` +
		`"messages":[{"from":"16505551234","id":"wamid.refer","type":"text","text":{"body":"caf\u00e9 \"ol\u00e1\""}}]}}]}]}`)
	sent := slices.Clone(body)
	p, err := graphapi.ParsePayload(body)
	if err != nil {
		t.Fatalf("ParsePayload: %v", err)
	}
	m := p.Entry[0].Changes[0].Value.Messages[0]
	within := func(s string) bool {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
		at := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return start <= at && at < start+uintptr(len(body))
	}
	for _, s := range []string{m.ID, m.From, m.Type, p.Entry[0].Changes[0].Value.Metadata.PhoneNumberID} {
		if !within(s) {
			t.Errorf("%q is a copy, not a part of the body", s)
		}
	}
	if want := `café "olá"`; m.Text.Body != want {
		t.Errorf("text with escapes = %q, want %q", m.Text.Body, want)
	}
	// The body is the caller's, and stays as it was.
	if !slices.Equal(body, sent) {
		t.Errorf("body changed to %s", body)
	}
}
