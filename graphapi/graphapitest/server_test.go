package graphapitest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
)

func TestDownloadNeedsBearer(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	id := srv.AddMedia([]byte("OggS"), "audio/ogg")

	info := get(t, srv.URL+"/v25.0/"+id, "Bearer "+graphapitest.Token)
	var answer struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(info.body, &answer); err != nil || answer.URL == "" {
		t.Fatalf("GET /v25.0/%s = %s, want a url", id, info.body)
	}
	if got := get(t, answer.URL, ""); got.status != http.StatusUnauthorized {
		t.Errorf("download without bearer = %d, want 401", got.status)
	}
	if got := get(t, answer.URL, "Bearer "+graphapitest.Token); got.status != http.StatusOK || string(got.body) != "OggS" {
		t.Errorf("download with bearer = %d %q, want 200 OggS", got.status, got.body)
	}
	if got := get(t, srv.URL+"/v25.0/nope", "Bearer "+graphapitest.Token); got.status != http.StatusBadRequest || !strings.Contains(string(got.body), `"code":100`) {
		t.Errorf("unknown media = %d %s, want a Graph error 100", got.status, got.body)
	}
}

func TestFailuresQueueInOrder(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	srv.FailNext(graphapitest.KindMarkRead, 1, http.StatusServiceUnavailable, nil)
	srv.FailNext(graphapitest.KindMarkRead, 1, http.StatusBadRequest, &graphapi.APIError{Code: graphapi.CodeInvalidParameter, Message: "bad"})
	c := graphapi.New(graphapi.Config{BaseURL: srv.URL, Token: graphapitest.Token, MaxAttempts: 1})

	errs := make([]error, 3)
	for i := range errs {
		errs[i] = c.MarkRead(t.Context(), "1", "wamid.x", false)
	}
	first, _ := errors.AsType[*graphapi.APIError](errs[0])
	second, _ := errors.AsType[*graphapi.APIError](errs[1])
	if first == nil || first.HTTPStatus != 503 || second == nil || second.Code != graphapi.CodeInvalidParameter || second.FBTraceID == "" || errs[2] != nil {
		t.Errorf("MarkRead errors = %v, want a 503, a code 100 with an fbtrace id, then success", errs)
	}
	if got := srv.ReadReceipts(); len(got) != 1 || len(srv.Messages()) != 0 {
		t.Errorf("fake holds %d receipts and %d messages, want 1 and 0", len(got), len(srv.Messages()))
	}
	var statuses []int
	for _, r := range srv.Requests() {
		statuses = append(statuses, r.Status)
	}
	if fmt.Sprint(statuses) != "[503 400 200]" {
		t.Errorf("recorded statuses = %v, want [503 400 200]", statuses)
	}
}

func TestRejectsWhatMetaRejects(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	tests := []struct{ name, body string }{
		{"no messaging_product", `{"to":"1","type":"text","text":{"body":"hi"}}`},
		{"no recipient", `{"messaging_product":"whatsapp","type":"text","text":{"body":"hi"}}`},
		{"text too long", `{"messaging_product":"whatsapp","to":"1","type":"text","text":{"body":"` + strings.Repeat("é", 4097) + `"}}`},
		{"type without object", `{"messaging_product":"whatsapp","to":"1","type":"audio"}`},
	}
	for _, tt := range tests {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v25.0/1/messages", strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+graphapitest.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", tt.name, resp.StatusCode)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("fake accepted %d malformed messages", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	c := graphapi.New(graphapi.Config{BaseURL: srv.URL, Token: graphapitest.Token})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := c.SendText(t.Context(), "1", "15550000000", fmt.Sprint("message ", i)); err != nil {
				t.Error(err)
			}
			srv.Messages()
			srv.Requests()
		})
	}
	wg.Wait()
	ids := map[string]bool{}
	for _, m := range srv.Messages() {
		ids[m.ID] = true
	}
	if len(ids) != 20 {
		t.Errorf("fake assigned %d distinct ids to 20 messages", len(ids))
	}
}

func TestNewOutsideTests(t *testing.T) {
	t.Parallel()
	srv, err := graphapitest.New(graphapitest.WithAddr("127.0.0.1:0"), graphapitest.WithToken("sandbox"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") || srv.Token != "sandbox" {
		t.Errorf("New = %s with token %q, want a 127.0.0.1 URL and token sandbox", srv.URL, srv.Token)
	}
}

type answer struct {
	status int
	body   []byte
}

func get(t *testing.T, url, authorization string) answer {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, body}
}

func TestPutMediaAndOnMessage(t *testing.T) {
	t.Parallel()
	got := make(chan graphapitest.Message, 1)
	srv := graphapitest.NewServer(t, graphapitest.WithOnMessage(func(m graphapitest.Message) { got <- m }))
	srv.PutMedia("1308761640948516", []byte("OggS voice"), "audio/ogg")
	c := graphapi.New(graphapi.Config{BaseURL: srv.URL, Token: graphapitest.Token})
	dl, err := c.DownloadMedia(t.Context(), "1308761640948516", 1<<20, "")
	if err != nil || string(dl.Data) != "OggS voice" {
		t.Fatalf("DownloadMedia(PutMedia id) = %v, %v", dl, err)
	}
	if _, err := c.SendText(t.Context(), "106540352242922", "16505551234", "hi"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m.Text != "hi" || m.To != "16505551234" {
		t.Errorf("OnMessage got %+v", m)
	}
}
