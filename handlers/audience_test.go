package handlers_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/internal/logtest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/store"
)

func TestAudienceServes(t *testing.T) {
	t.Parallel()
	const ana, user = "16505551234", "US.13491208655302741918"
	tests := []struct {
		name         string
		allow, block []string
		ids          []string
		want         bool
	}{
		{"no lists", nil, nil, []string{ana, ""}, true},
		{"blocked by number, written as people do", nil, []string{"+1 650-555-1234"}, []string{ana}, false},
		{"blocked by user id", nil, []string{user}, []string{"", user}, false},
		{"someone else blocked", nil, []string{"447700900123"}, []string{ana}, true},
		{"allowed", []string{"+16505551234"}, nil, []string{ana}, true},
		{"not on the allow list", []string{"447700900123"}, nil, []string{ana, user}, false},
		{"allowed by user id", []string{user}, nil, []string{"", user}, true},
		{"blocked wins over allowed", []string{ana}, []string{user}, []string{ana, user}, false},
		{"no id at all, with an allow list", []string{ana}, nil, []string{""}, false},
	}
	for _, tt := range tests {
		if got := handlers.NewAudience(tt.allow, tt.block).Serves(tt.ids...); got != tt.want {
			t.Errorf("%s: Serves(%q) = %v, want %v", tt.name, tt.ids, got, tt.want)
		}
	}
}

// TestBlockedSenderCostsNothing posts a batch in which one sender is
// blocked: his message is neither recorded nor queued, the others are.
func TestBlockedSenderCostsNothing(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(store.Options{})
	var jobs []queue.Job
	q := queue.NewInProcess(func(_ context.Context, j queue.Job) error { jobs = append(jobs, j); return nil },
		queue.InProcessOptions{Workers: 1})
	tags, _ := store.NewTags(secret)
	h := &harness{logs: &logtest.Buffer{}}
	h.handler = handlers.New(handlers.Deps{AppSecret: secret, Store: st, Queue: q, Tags: tags,
		Logger: logging.New(h.logs, slog.LevelInfo), IDs: logging.NewIDs(secret),
		Audience: handlers.NewAudience(nil, []string{"447700900123"})})
	body := fixture(t, "batch.json")
	if rec := h.postSigned(t, body); rec.Code != http.StatusOK {
		t.Fatalf("POST = %d, want 200", rec.Code)
	}
	q.Close(context.Background())
	if len(jobs) != 4 {
		t.Errorf("%d jobs queued, want the 4 of the senders served", len(jobs))
	}
	p, _ := graphapi.ParsePayload(body)
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			for _, m := range c.Value.Messages {
				got, _ := st.Accept(context.Background(), []string{m.ID})
				if blocked := m.From == "447700900123"; blocked != (got[0] == store.New) {
					t.Errorf("message from %s: marker recorded = %v, want %v", m.From, got[0] != store.New, !blocked)
				}
			}
		}
	}
}
