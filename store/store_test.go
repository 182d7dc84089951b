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

func (f fixture) accept(t *testing.T, ids ...string) []bool {
	t.Helper()
	created, err := f.Accept(t.Context(), ids)
	if err != nil {
		t.Fatalf("Accept(%q): %v", ids, err)
	}
	return created
}

func (f fixture) claim(t *testing.T, id string, lease time.Duration) Marker {
	t.Helper()
	m, err := f.Claim(t.Context(), id, lease)
	if err != nil {
		t.Fatalf("Claim(%q): %v", id, err)
	}
	return m
}

func (f fixture) complete(t *testing.T, id string) {
	t.Helper()
	if err := f.Complete(t.Context(), id); err != nil {
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
	t.Run("History", func(t *testing.T) { testHistory(t, newStore) })
	t.Run("AppendConcurrent", func(t *testing.T) { testAppendConcurrent(t, newStore) })
	t.Run("AppendIdempotent", func(t *testing.T) { testAppendIdempotent(t, newStore) })
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
	type call struct {
		advance time.Duration // moves the clock before the call
		ids     []string
		want    []bool
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"fresh", []call{{ids: []string{"a"}, want: []bool{true}}}},
		{"empty batch", []call{{ids: nil, want: []bool{}}}},
		{"duplicate", []call{
			{ids: []string{"a"}, want: []bool{true}},
			{ids: []string{"a"}, want: []bool{false}},
		}},
		{"duplicates inside a batch", []call{
			{ids: []string{"a", "b", "a", "c", "b", "a"}, want: []bool{true, true, false, true, false, false}},
		}},
		{"duplicates across calls", []call{
			{ids: []string{"a", "b"}, want: []bool{true, true}},
			{ids: []string{"b", "c", "a", "d", "c"}, want: []bool{false, true, false, true, false}},
		}},
		{"awkward ids", []call{
			{ids: awkward, want: []bool{true, true, true, true, true, true, true, true}},
			{ids: awkward, want: []bool{false, false, false, false, false, false, false, false}},
		}},
		{"live marker just before expiry", []call{
			{ids: []string{"a"}, want: []bool{true}},
			{advance: testMarkerTTL - time.Second, ids: []string{"a"}, want: []bool{false}},
		}},
		{"expired marker counts as absent", []call{
			{ids: []string{"a", "b"}, want: []bool{true, true}},
			{advance: testMarkerTTL, ids: []string{"a", "c", "a"}, want: []bool{true, true, false}},
			{ids: []string{"a", "b"}, want: []bool{false, true}},
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
			results := make([][]bool, racers)
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
					if i < len(created) && created[i] {
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
			f.claim(t, "m", time.Minute)
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
			if got := f.accept(t, "m"); got[0] != tt.wantDeleted {
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
				f.claim(t, "m", lease)
				f.complete(t, "m")
			},
			wantErr: ErrReplied,
		},
		{
			name: "replied but expired",
			setup: func(t *testing.T, f fixture) {
				f.accept(t, "m")
				f.claim(t, "m", lease)
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
	f.claim(t, "m", time.Hour)
	if err := f.MarkSent(t.Context(), "m", "text"); err != nil {
		t.Fatal(err)
	}
	if err := f.Unclaim(t.Context(), "m"); err != nil {
		t.Fatalf("Unclaim: %v", err)
	}
	// The next try may claim at once, well within the first lease.
	m := f.claim(t, "m", time.Hour)
	if m.Attempts != 2 || !slices.Equal(m.Sent, []string{"text"}) {
		t.Errorf("Claim after Unclaim = Attempts %d, Sent %q; want 2, [text]", m.Attempts, m.Sent)
	}
	f.complete(t, "m")
	if err := f.Unclaim(t.Context(), "m"); err != nil {
		t.Fatalf("Unclaim of a replied message: %v", err)
	}
	if _, err := f.Claim(t.Context(), "m", time.Minute); !errors.Is(err, ErrReplied) {
		t.Errorf("Claim after Unclaim of a replied message = %v, want ErrReplied", err)
	}
}

func testMarkSent(t *testing.T, newStore newStoreFunc) {
	tests := []struct {
		name     string
		claimed  bool // whether the message is claimed before the parts are sent
		parts    []string
		wantSent []string
	}{
		{"one part", true, []string{"text"}, []string{"text"}},
		{"parts accumulate without duplicates", true, []string{"text", "text", "audio", "text"}, []string{"text", "audio"}},
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

	t.Run("complete keeps sent parts", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore)
		if err := f.MarkSent(t.Context(), "m", "text"); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
		f.complete(t, "m")
		if _, err := f.Claim(t.Context(), "m", time.Minute); !errors.Is(err, ErrReplied) {
			t.Errorf("Claim after Complete: %v, want ErrReplied", err)
		}
	})
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
		if !created[0] || !created[acceptBatch-1] {
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
