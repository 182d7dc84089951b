package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Retention used by the suite: short, so the tests read in minutes.
const (
	testMarkerTTL  = time.Hour
	testHistoryTTL = 10 * time.Minute
)

// clock is a settable Options.Now shared by a test and the store under test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newStoreFunc makes an empty store for one subtest.
type newStoreFunc func(t *testing.T, opts Options) Store

// fixture is one subtest's store, with the clock it runs on.
type fixture struct {
	Store
	clock *clock
}

func newFixture(t *testing.T, newStore newStoreFunc) fixture {
	t.Helper()
	c := newClock()
	s := newStore(t, Options{MarkerTTL: testMarkerTTL, HistoryTTL: testHistoryTTL, Now: c.Now})
	return fixture{Store: s, clock: c}
}

func (f fixture) accept(t *testing.T, ids ...string) []Admission {
	t.Helper()
	got, err := f.Accept(t.Context(), ids)
	if err != nil {
		t.Fatalf("Accept(%q): %v", ids, err)
	}
	return got
}

func (f fixture) claim(t *testing.T, id string, lease time.Duration) Marker {
	t.Helper()
	m, err := f.Claim(t.Context(), id, lease)
	if err != nil {
		t.Fatalf("Claim(%q): %v", id, err)
	}
	return m
}

// complete claims id and completes it under that claim.
func (f fixture) complete(t *testing.T, id string) {
	t.Helper()
	m := f.claim(t, id, time.Minute)
	if err := f.Complete(t.Context(), id, m.Attempts); err != nil {
		t.Fatalf("Complete(%q): %v", id, err)
	}
}

func (f fixture) append(t *testing.T, user string, turns ...Turn) {
	t.Helper()
	if err := f.AppendTurns(t.Context(), user, turns...); err != nil {
		t.Fatalf("AppendTurns(%q): %v", user, err)
	}
}

func (f fixture) history(t *testing.T, user string, n int) []Turn {
	t.Helper()
	turns, err := f.History(t.Context(), user, n)
	if err != nil {
		t.Fatalf("History(%q, %d): %v", user, n, err)
	}
	return turns
}

// testStore runs the Store contract against the stores newStore makes, so the
// memory and Firestore implementations are held to the same behaviour.
func testStore(t *testing.T, newStore newStoreFunc) {
	t.Run("Accept", func(t *testing.T) { testAccept(t, newStore) })
	t.Run("AcceptConcurrent", func(t *testing.T) { testAcceptConcurrent(t, newStore) })
	t.Run("Release", func(t *testing.T) { testRelease(t, newStore) })
	t.Run("Claim", func(t *testing.T) { testClaim(t, newStore) })
	t.Run("ClaimConcurrent", func(t *testing.T) { testClaimConcurrent(t, newStore) })
	t.Run("MarkSent", func(t *testing.T) { testMarkSent(t, newStore) })
	t.Run("Unclaim", func(t *testing.T) { testUnclaim(t, newStore) })
	t.Run("Fencing", func(t *testing.T) { testFencing(t, newStore) })
	t.Run("Sends", func(t *testing.T) { testSends(t, newStore) })
	t.Run("History", func(t *testing.T) { testHistory(t, newStore) })
	t.Run("AppendConcurrent", func(t *testing.T) { testAppendConcurrent(t, newStore) })
	t.Run("AppendIdempotent", func(t *testing.T) { testAppendIdempotent(t, newStore) })
	t.Run("ResetHistory", func(t *testing.T) { testResetHistory(t, newStore) })
	t.Run("Limits", func(t *testing.T) { testLimits(t, newStore) })
}

func testAccept(t *testing.T, newStore newStoreFunc) {
	// awkward are ids a document name cannot hold as they are.
	awkward := []string{
		"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTdCNUY0RjEzRTQ5QjA1RDc2RQA=",
		"a/b+c=",
		".",
		"..",
		"__name__",
		"",
		strings.Repeat("x", 2000),
		strings.Repeat("x", 2001),
	}
	const N, D, P, R = New, Duplicate, Pending, Requeue
	grace := DefaultAcceptGrace
	type call struct {
		advance time.Duration // moves the clock before the call
		ids     []string
		want    []Admission
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"fresh", []call{{ids: []string{"a"}, want: []Admission{N}}}},
		{"empty batch", []call{{ids: nil, want: []Admission{}}}},
		{"redelivered within the grace", []call{
			{ids: []string{"a"}, want: []Admission{N}},
			{advance: grace - time.Second, ids: []string{"a"}, want: []Admission{P}},
		}},
		{"never claimed after the grace is queued again, once per grace", []call{
			{ids: []string{"a"}, want: []Admission{N}},
			{advance: grace, ids: []string{"a", "a"}, want: []Admission{R, D}},
			{ids: []string{"a"}, want: []Admission{P}},
			{advance: grace, ids: []string{"a"}, want: []Admission{R}},
		}},
		{"duplicates inside a batch", []call{
			{ids: []string{"a", "b", "a", "c", "b", "a"}, want: []Admission{N, N, D, N, D, D}},
		}},
		{"duplicates across calls", []call{
			{ids: []string{"a", "b"}, want: []Admission{N, N}},
			{ids: []string{"b", "c", "a", "d", "c"}, want: []Admission{P, N, P, N, D}},
		}},
		{"awkward ids", []call{
			{ids: awkward, want: []Admission{N, N, N, N, N, N, N, N}},
			{ids: awkward, want: []Admission{P, P, P, P, P, P, P, P}},
		}},
		{"live marker just before expiry", []call{
			{ids: []string{"a"}, want: []Admission{N}},
			{advance: testMarkerTTL - time.Second, ids: []string{"a"}, want: []Admission{R}},
		}},
		{"expired marker counts as absent", []call{
			{ids: []string{"a", "b"}, want: []Admission{N, N}},
			{advance: testMarkerTTL, ids: []string{"a", "c", "a"}, want: []Admission{N, N, D}},
			{ids: []string{"a", "b"}, want: []Admission{P, N}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, newStore)
			for i, c := range tt.calls {
				f.clock.Advance(c.advance)
				if got := f.accept(t, c.ids...); !slices.Equal(got, c.want) {
					t.Fatalf("call %d: Accept(%.40q) = %v, want %v", i, c.ids, got, c.want)
				}
			}
		})
	}

	t.Run("claimed or replied is a duplicate", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore)
		f.accept(t, "claimed", "replied")
		f.claim(t, "claimed", time.Minute)
		f.complete(t, "replied")
		f.clock.Advance(2 * grace)
		if got, want := f.accept(t, "claimed", "replied"), []Admission{D, D}; !slices.Equal(got, want) {
			t.Errorf("Accept = %v, want %v", got, want)
		}
	})
}

func testAcceptConcurrent(t *testing.T, newStore newStoreFunc) {
	tests := []struct {
		name    string
		expired bool // whether a marker exists and has expired before the race
	}{
		{"fresh", false},
		{"expired", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, newStore)
			ids := []string{"x", "y", "z"}
			if tt.expired {
				f.accept(t, ids...)
				f.clock.Advance(testMarkerTTL)
			}
			const racers = 10
			results := make([][]Admission, racers)
			var wg sync.WaitGroup
			for r := range racers {
				wg.Go(func() {
					created, err := f.Accept(t.Context(), ids)
					if err != nil {
						t.Errorf("Accept: %v", err)
					}
					results[r] = created
				})
			}
			wg.Wait()
			for i, id := range ids {
				n := 0
				for _, created := range results {
					if i < len(created) && created[i].Queue() {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%d concurrent Accepts created %q %d times, want once", racers, id, n)
				}
			}
		})
	}
}

func testRelease(t *testing.T, newStore newStoreFunc) {
	tests := []struct {
		name        string
		setup       func(t *testing.T, f fixture)
		wantDeleted bool
	}{
		{"accepted", func(t *testing.T, f fixture) { f.accept(t, "m") }, true},
		{"processing", func(t *testing.T, f fixture) {
			f.accept(t, "m")
			f.claim(t, "m", time.Minute)
		}, false},
		{"replied", func(t *testing.T, f fixture) {
			f.accept(t, "m")
			f.complete(t, "m")
		}, false},
		{"missing", func(t *testing.T, f fixture) {}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, newStore)
			tt.setup(t, f)
			if err := f.Release(t.Context(), []string{"m", "never-seen"}); err != nil {
				t.Fatalf("Release: %v", err)
			}
			// Accept creates the marker again exactly when Release deleted it.
			if got := f.accept(t, "m"); (got[0] == New) != tt.wantDeleted {
				t.Errorf("Accept after Release = %v, want %v", got[0], tt.wantDeleted)
			}
		})
	}
}

func testClaim(t *testing.T, newStore newStoreFunc) {
	const lease = time.Minute
	start := newClock().Now()
	tests := []struct {
		name    string
		setup   func(t *testing.T, f fixture)
		want    Marker // UpdatedAt is checked to be the claim's time
		wantErr error
	}{
		{
			name:  "accepted",
			setup: func(t *testing.T, f fixture) { f.accept(t, "m") },
			want:  Marker{State: Processing, Attempts: 1, LeaseUntil: start.Add(lease), ExpireAt: start.Add(testMarkerTTL)},
		},
		{
			name:  "missing is created",
			setup: func(t *testing.T, f fixture) {},
			want:  Marker{State: Processing, Attempts: 1, LeaseUntil: start.Add(lease), ExpireAt: start.Add(testMarkerTTL)},
		},
		{
			name: "processing with a live lease",
			setup: func(t *testing.T, f fixture) {
				f.accept(t, "m")
				f.claim(t, "m", lease)
				f.clock.Advance(lease - time.Second)
			},
			wantErr: ErrClaimed,
		},
		{
			name: "processing with a lapsed lease",
			setup: func(t *testing.T, f fixture) {
				f.accept(t, "m")
				f.claim(t, "m", lease)
				f.clock.Advance(lease)
			},
			want: Marker{State: Processing, Attempts: 2, LeaseUntil: start.Add(2 * lease), ExpireAt: start.Add(testMarkerTTL)},
		},
		{
			name: "replied",
			setup: func(t *testing.T, f fixture) {
				f.accept(t, "m")
				f.complete(t, "m")
			},
			wantErr: ErrReplied,
		},
		{
			name: "replied but expired",
			setup: func(t *testing.T, f fixture) {
				f.accept(t, "m")
				f.complete(t, "m")
				f.clock.Advance(testMarkerTTL)
			},
			want: Marker{State: Processing, Attempts: 1, LeaseUntil: start.Add(testMarkerTTL + lease), ExpireAt: start.Add(2 * testMarkerTTL)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, newStore)
			tt.setup(t, f)
			got, err := f.Claim(t.Context(), "m", lease)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Claim error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			want := tt.want
			want.UpdatedAt = f.clock.Now()
			if !equalMarkers(got, want) {
				t.Errorf("Claim =\n%s\nwant\n%s", formatMarker(got), formatMarker(want))
			}
		})
	}
}

func testClaimConcurrent(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	f := newFixture(t, newStore)
	f.accept(t, "m")
	const racers = 10
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for r := range racers {
		wg.Go(func() { _, errs[r] = f.Claim(t.Context(), "m", time.Minute) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrClaimed):
			t.Errorf("Claim: %v, want nil or ErrClaimed", err)
		}
	}
	if won != 1 {
		t.Errorf("%d concurrent Claims succeeded %d times, want once", racers, won)
	}
}

func testUnclaim(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	f := newFixture(t, newStore)
	f.accept(t, "m")
	first := f.claim(t, "m", time.Hour)
	if err := f.MarkSent(t.Context(), "m", "text"); err != nil {
		t.Fatal(err)
	}
	if err := f.Unclaim(t.Context(), "m", first.Attempts); err != nil {
		t.Fatalf("Unclaim: %v", err)
	}
	// The next try may claim at once, well within the first lease.
	m := f.claim(t, "m", time.Hour)
	if m.Attempts != 2 || !slices.Equal(m.Sent, []string{"text"}) {
		t.Errorf("Claim after Unclaim = Attempts %d, Sent %q; want 2, [text]", m.Attempts, m.Sent)
	}
	if err := f.Complete(t.Context(), "m", m.Attempts); err != nil {
		t.Fatal(err)
	}
	if err := f.Unclaim(t.Context(), "m", m.Attempts); !errors.Is(err, ErrReplied) {
		t.Fatalf("Unclaim of a replied message = %v, want ErrReplied", err)
	}
	if _, err := f.Claim(t.Context(), "m", time.Minute); !errors.Is(err, ErrReplied) {
		t.Errorf("Claim after Unclaim of a replied message = %v, want ErrReplied", err)
	}
}

// testFencing checks that an attempt whose lease ran out and whose message
// was claimed again can change nothing about the new claim.
func testFencing(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	f := newFixture(t, newStore)
	ctx := t.Context()
	old := f.claim(t, "m", time.Minute)
	// Renewing keeps the claim for as long as nobody else took it, even
	// after the lease lapsed.
	f.clock.Advance(2 * time.Minute)
	if _, err := f.Renew(ctx, "m", old.Attempts, time.Minute); err != nil {
		t.Fatalf("Renew of a lapsed claim nobody took = %v, want nil", err)
	}
	f.clock.Advance(time.Minute)
	cur := f.claim(t, "m", time.Minute)
	if cur.Attempts == old.Attempts {
		t.Fatalf("a new claim has the old token %d", cur.Attempts)
	}
	if err := f.StartSend(ctx, "m", cur.Attempts, "audio"); err != nil {
		t.Fatal(err)
	}
	stale := []struct {
		name string
		do   func() error
	}{
		{"Renew", func() error { _, err := f.Renew(ctx, "m", old.Attempts, time.Hour); return err }},
		{"StartSend", func() error { return f.StartSend(ctx, "m", old.Attempts, "text.1") }},
		{"AbortSend", func() error { return f.AbortSend(ctx, "m", old.Attempts, "audio") }},
		{"Unclaim", func() error { return f.Unclaim(ctx, "m", old.Attempts) }},
		{"Complete", func() error { return f.Complete(ctx, "m", old.Attempts) }},
	}
	for _, w := range stale {
		if err := w.do(); !errors.Is(err, ErrLost) {
			t.Errorf("%s with the old token = %v, want ErrLost", w.name, err)
		}
	}
	// The new claim is untouched: its lease is live, its send still uncertain.
	if _, err := f.Claim(ctx, "m", time.Minute); !errors.Is(err, ErrClaimed) {
		t.Errorf("Claim after the stale writes = %v, want ErrClaimed", err)
	}
	m, err := f.Renew(ctx, "m", cur.Attempts, time.Minute)
	if err != nil {
		t.Fatalf("Renew with the current token: %v", err)
	}
	if _, ok := m.Uncertain("audio"); !ok || m.State != Processing {
		t.Errorf("marker after the stale writes = %s, want Processing with audio uncertain", formatMarker(m))
	}
	// A part the stale attempt did deliver is still recorded: that is a fact.
	if err := f.MarkSent(ctx, "m", "text.1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Complete(ctx, "m", cur.Attempts); err != nil {
		t.Fatalf("Complete with the current token: %v", err)
	}
	if _, err := f.Renew(ctx, "m", cur.Attempts, time.Minute); !errors.Is(err, ErrReplied) {
		t.Errorf("Renew after Complete = %v, want ErrReplied", err)
	}
}

// testSends checks the record of each part: started, delivered, aborted or
// confirmed, and the rule that keeps the fallback apart from the answer.
func testSends(t *testing.T, newStore newStoreFunc) {
	ctx := t.Context()
	t.Run("start, then sent", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore)
		c := f.claim(t, "m", time.Minute)
		start := f.clock.Now()
		if err := f.StartSend(ctx, "m", c.Attempts, "text.1"); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
		m, _ := f.Renew(ctx, "m", c.Attempts, time.Minute)
		if since, ok := m.Uncertain("text.1"); !ok || !since.Equal(start) {
			t.Errorf("Uncertain(text.1) = %v, %v; want %v, true", since, ok, start)
		}
		if err := f.MarkSent(ctx, "m", "text.1"); err != nil {
			t.Fatal(err)
		}
		m, _ = f.Renew(ctx, "m", c.Attempts, time.Minute)
		if _, ok := m.Uncertain("text.1"); ok || !slices.Equal(m.Sent, []string{"text.1"}) {
			t.Errorf("after MarkSent: %s; want text.1 sent and not uncertain", formatMarker(m))
		}
	})
	t.Run("aborted", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore)
		c := f.claim(t, "m", time.Minute)
		f.StartSend(ctx, "m", c.Attempts, "audio")
		if err := f.AbortSend(ctx, "m", c.Attempts, "audio"); err != nil {
			t.Fatal(err)
		}
		m, _ := f.Renew(ctx, "m", c.Attempts, time.Minute)
		if _, ok := m.Uncertain("audio"); ok || len(m.Sent) > 0 {
			t.Errorf("after AbortSend: %s; want nothing recorded", formatMarker(m))
		}
		// With the answer aborted, the fallback may go.
		if err := f.StartSend(ctx, "m", c.Attempts, FallbackPart); err != nil {
			t.Errorf("StartSend(fallback) after the answer was aborted = %v", err)
		}
	})
	t.Run("confirmed by a status", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore)
		c := f.claim(t, "m", time.Minute)
		f.StartSend(ctx, "m", c.Attempts, "audio")
		if err := f.Confirm(ctx, "m", "audio"); err != nil {
			t.Fatal(err)
		}
		confirmed := f.clock.Now()
		// The part's other statuses (delivered, read, and redeliveries)
		// change nothing, not even UpdatedAt.
		for range 3 {
			f.clock.Advance(time.Second)
			if err := f.Confirm(ctx, "m", "audio"); err != nil {
				t.Fatal(err)
			}
		}
		// A Claim refused while the lease holds returns the stored marker
		// and, unlike Renew, does not change it.
		m, err := f.Claim(ctx, "m", time.Minute)
		if !errors.Is(err, ErrClaimed) {
			t.Fatalf("Claim under a live lease = %v, want ErrClaimed", err)
		}
		if _, ok := m.Uncertain("audio"); ok || !slices.Equal(m.Sent, []string{"audio"}) {
			t.Errorf("after Confirm: %s; want audio sent", formatMarker(m))
		}
		if !m.UpdatedAt.Equal(confirmed) {
			t.Errorf("after repeated Confirms: UpdatedAt %v, want %v (the first Confirm's)", m.UpdatedAt, confirmed)
		}
		// A status for a message with no marker creates none.
		if err := f.Confirm(ctx, "gone", "audio"); err != nil {
			t.Fatal(err)
		}
		if got := f.accept(t, "gone"); got[0] != New {
			t.Errorf("Accept after Confirm of an unknown message = %v, want New", got[0])
		}
	})
	fallbackRule := []struct {
		name   string
		before func(f fixture, token int)
		part   string
	}{
		{"no fallback beside an uncertain answer", func(f fixture, token int) { f.StartSend(ctx, "m", token, "audio") }, FallbackPart},
		{"no fallback beside a sent answer", func(f fixture, token int) { f.MarkSent(ctx, "m", "text.1") }, FallbackPart},
		{"no answer beside an uncertain fallback", func(f fixture, token int) { f.StartSend(ctx, "m", token, FallbackPart) }, "text.1"},
		{"no answer beside a sent fallback", func(f fixture, token int) { f.MarkSent(ctx, "m", FallbackPart) }, "audio"},
	}
	for _, tt := range fallbackRule {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, newStore)
			c := f.claim(t, "m", time.Minute)
			tt.before(f, c.Attempts)
			if err := f.StartSend(ctx, "m", c.Attempts, tt.part); !errors.Is(err, ErrAnswered) {
				t.Errorf("StartSend(%s) = %v, want ErrAnswered", tt.part, err)
			}
		})
	}
}

func testMarkSent(t *testing.T, newStore newStoreFunc) {
	tests := []struct {
		name     string
		claimed  bool // whether the message is claimed before the parts are sent
		parts    []string
		wantSent []string
	}{
		{"one part", true, []string{"text.1"}, []string{"text.1"}},
		{"parts accumulate without duplicates", true, []string{"text.1", "text.1", "audio", "text.1"}, []string{"text.1", "audio"}},
		{"missing marker is created", false, []string{"audio", "audio"}, []string{"audio"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, newStore)
			wantAttempts := 1
			if tt.claimed {
				f.claim(t, "m", time.Minute)
				wantAttempts++
			}
			for _, part := range tt.parts {
				if err := f.MarkSent(t.Context(), "m", part); err != nil {
					t.Fatalf("MarkSent(%q): %v", part, err)
				}
			}
			// A retry after the lease lapsed sees the parts already sent.
			f.clock.Advance(time.Minute)
			m := f.claim(t, "m", time.Minute)
			if !slices.Equal(m.Sent, tt.wantSent) || m.Attempts != wantAttempts {
				t.Errorf("Claim after MarkSent = Sent %q, Attempts %d; want Sent %q, Attempts %d", m.Sent, m.Attempts, tt.wantSent, wantAttempts)
			}
		})
	}
}

func testHistory(t *testing.T, newStore newStoreFunc) {
	start := newClock().Now()
	turn := func(id string, at time.Duration) Turn {
		return Turn{ID: id, Role: "user", Text: "text of " + id, At: start.Add(at)}
	}
	tests := []struct {
		name    string
		user    string
		turns   []Turn
		advance time.Duration // moves the clock before History
		n       int
		want    []Turn
	}{
		{
			name:  "oldest first",
			user:  "15550001111",
			turns: []Turn{turn("c", 3*time.Second), turn("a", time.Second), turn("b", 2*time.Second)},
			n:     10,
			want:  []Turn{turn("a", time.Second), turn("b", 2*time.Second), turn("c", 3*time.Second)},
		},
		{
			name:  "limit keeps the newest",
			user:  "US.13491208655302741918",
			turns: []Turn{turn("a", time.Second), turn("b", 2*time.Second), turn("c", 3*time.Second), turn("d", 4*time.Second)},
			n:     2,
			want:  []Turn{turn("c", 3*time.Second), turn("d", 4*time.Second)},
		},
		{
			name:  "same time ordered by id",
			user:  "+1 555/000=",
			turns: []Turn{turn("b", 0), turn("a", 0), turn("c", -time.Second)},
			n:     10,
			want:  []Turn{turn("c", -time.Second), turn("a", 0), turn("b", 0)},
		},
		{
			name:    "expired turns are left out",
			user:    "15550001111",
			turns:   []Turn{turn("old", -testHistoryTTL), turn("edge", time.Second-testHistoryTTL), turn("new", 0)},
			advance: time.Second,
			n:       10,
			want:    []Turn{turn("new", 0)},
		},
		{
			name:  "expired turns do not use up the limit",
			user:  "15550001111",
			turns: []Turn{turn("old", -2*testHistoryTTL), turn("a", time.Second), turn("b", 2*time.Second)},
			n:     3,
			want:  []Turn{turn("a", time.Second), turn("b", 2*time.Second)},
		},
		{
			name:  "zero time is now",
			user:  "15550001111",
			turns: []Turn{{ID: "a", Role: "model", Text: "hi"}},
			n:     1,
			want:  []Turn{{ID: "a", Role: "model", Text: "hi", At: start}},
		},
		{
			name: "zero times keep the order given",
			user: "15550001111",
			turns: []Turn{{ID: "wamid.1-user", Role: "user", Text: "question"},
				{ID: "wamid.1-model", Role: "model", Text: "answer"}},
			n: 10,
			want: []Turn{{ID: "wamid.1-user", Role: "user", Text: "question", At: start},
				{ID: "wamid.1-model", Role: "model", Text: "answer", At: start.Add(time.Microsecond)}},
		},
		{
			name:  "zero limit",
			user:  "15550001111",
			turns: []Turn{turn("a", 0)},
			n:     0,
			want:  nil,
		},
		{
			name: "unknown user",
			user: "15550001111",
			n:    10,
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, newStore)
			if len(tt.turns) > 0 {
				f.append(t, tt.user, tt.turns...)
			}
			// Another user's turns must not show up.
			f.append(t, tt.user+"0", turn("other", 0))
			f.clock.Advance(tt.advance)
			if got := f.history(t, tt.user, tt.n); !equalTurns(got, tt.want) {
				t.Errorf("History(%q, %d) =\n%s\nwant\n%s", tt.user, tt.n, formatTurns(got), formatTurns(tt.want))
			}
		})
	}

	t.Run("turn without id", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore)
		err := f.AppendTurns(t.Context(), "u", turn("a", 0), Turn{Text: "no id"})
		if err == nil {
			t.Fatal("AppendTurns with a turn without ID succeeded, want an error")
		}
		if got := f.history(t, "u", 10); len(got) != 0 {
			t.Errorf("History after failed append =\n%s\nwant none", formatTurns(got))
		}
	})
}

func testAppendConcurrent(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	f := newFixture(t, newStore)
	const writers = 2
	at := f.clock.Now()
	var want []Turn
	var wg sync.WaitGroup
	for w := range writers {
		turns := []Turn{
			{ID: fmt.Sprintf("w%d-user", w), Role: "user", Text: "question", At: at.Add(time.Duration(2*w) * time.Second)},
			{ID: fmt.Sprintf("w%d-model", w), Role: "model", Text: "answer", At: at.Add(time.Duration(2*w+1) * time.Second)},
		}
		want = append(want, turns...)
		wg.Go(func() {
			if err := f.AppendTurns(t.Context(), "u", turns...); err != nil {
				t.Errorf("AppendTurns: %v", err)
			}
		})
	}
	wg.Wait()
	if got := f.history(t, "u", 10); !equalTurns(got, want) {
		t.Errorf("History after %d concurrent appends =\n%s\nwant\n%s", writers, formatTurns(got), formatTurns(want))
	}
}

func testAppendIdempotent(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	f := newFixture(t, newStore)
	at := f.clock.Now()
	user := Turn{ID: "wamid.1/user", Role: "user", Text: "question", At: at}
	model := Turn{ID: "wamid.1/model", Role: "model", Text: "answer", At: at.Add(time.Second)}
	f.append(t, "u", user, model)
	f.append(t, "u", user, model)
	f.append(t, "u", model, model)
	if got, want := f.history(t, "u", 10), []Turn{user, model}; !equalTurns(got, want) {
		t.Errorf("History after re-appending =\n%s\nwant\n%s", formatTurns(got), formatTurns(want))
	}
}

func equalMarkers(a, b Marker) bool {
	return a.State == b.State && a.Attempts == b.Attempts && a.LeaseUntil.Equal(b.LeaseUntil) &&
		slices.Equal(a.Sent, b.Sent) && a.UpdatedAt.Equal(b.UpdatedAt) && a.ExpireAt.Equal(b.ExpireAt)
}

func formatMarker(m Marker) string {
	return fmt.Sprintf("{State: %s, Attempts: %d, LeaseUntil: %s, Sent: %q, UpdatedAt: %s, ExpireAt: %s}",
		m.State, m.Attempts, m.LeaseUntil.Format(time.RFC3339Nano), m.Sent,
		m.UpdatedAt.Format(time.RFC3339Nano), m.ExpireAt.Format(time.RFC3339Nano))
}

func equalTurns(a, b []Turn) bool {
	return slices.EqualFunc(a, b, func(x, y Turn) bool {
		return x.ID == y.ID && x.Role == y.Role && x.Text == y.Text && x.At.Equal(y.At)
	})
}

func formatTurns(turns []Turn) string {
	var b strings.Builder
	for _, t := range turns {
		fmt.Fprintf(&b, "  {%q %s %q %s}\n", t.ID, t.Role, t.Text, t.At.Format(time.RFC3339Nano))
	}
	return b.String()
}

func TestMemory(t *testing.T) {
	testStore(t, func(_ *testing.T, opts Options) Store { return NewMemory(opts) })
}

// acceptBatch is the size of the webhook batch BenchmarkAccept1000 measures.
const acceptBatch = 1000

// benchmarkAccept measures Accept of acceptBatch fresh ids per iteration.
func benchmarkAccept(b *testing.B, s Store) {
	ctx := context.Background()
	ids := make([]string, acceptBatch)
	for i := 0; b.Loop(); i++ {
		for j := range ids {
			ids[j] = fmt.Sprintf("wamid.bench%d.%d", i, j)
		}
		created, err := s.Accept(ctx, ids)
		if err != nil {
			b.Fatalf("Accept: %v", err)
		}
		if created[0] != New || created[acceptBatch-1] != New {
			b.Fatalf("Accept of fresh ids = %v..., want all created", created[:1])
		}
	}
}

func BenchmarkAccept1000(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchmarkAccept(b, NewMemory(Options{})) })
	b.Run("firestore", func(b *testing.B) {
		benchmarkAccept(b, newFirestore(emulatorClient(b), Options{}, testPrefix()))
	})
}
