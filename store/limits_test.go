package store

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// testLimits is the contract of Gate and the spending calls, run against
// both stores.
func testLimits(t *testing.T, newStore newStoreFunc) {
	t.Run("Windows", func(t *testing.T) { testGateWindows(t, newStore) })
	t.Run("OptOut", func(t *testing.T) { testGateOptOut(t, newStore) })
	t.Run("Concurrent", func(t *testing.T) { testGateConcurrent(t, newStore) })
	t.Run("Spending", func(t *testing.T) { testSpending(t, newStore) })
}

func (f fixture) gate(t *testing.T, sender, id string, in Inbound) Verdict {
	t.Helper()
	v, err := f.Gate(t.Context(), sender, id, in)
	if err != nil {
		t.Fatalf("Gate(%q, %q): %v", sender, id, err)
	}
	return v
}

// at sets the fixture's clock to the given time of its first day.
func (f fixture) at(hour, min, sec, ms int) {
	now := f.clock.Now()
	want := time.Date(now.Year(), now.Month(), now.Day(), hour, min, sec, ms*1e6, time.UTC)
	f.clock.Advance(want.Sub(now))
}

func testGateWindows(t *testing.T, newStore newStoreFunc) {
	f := newFixture(t, newStore) // 12:00:00 UTC
	in := Inbound{Limits: Limits{PerMinute: 3, PerDay: 5}}
	const ana, bruno = "16505551234", "US.998877"
	steps := []struct {
		at     [4]int // hour, minute, second, millisecond
		sender string
		id     string
		want   Verdict
	}{
		{[4]int{12, 0, 0, 0}, ana, "m1", Serve},
		{[4]int{12, 0, 10, 0}, ana, "m2", Serve},
		{[4]int{12, 0, 20, 0}, ana, "m3", Serve},
		{[4]int{12, 0, 30, 0}, ana, "m4", OverMinute}, // the window's one notice
		{[4]int{12, 0, 31, 0}, ana, "m5", Quiet},
		{[4]int{12, 0, 32, 0}, ana, "m4", OverMinute}, // a retry of the notice's message
		{[4]int{12, 0, 33, 0}, ana, "m1", Serve},      // a retry, not counted again
		{[4]int{12, 0, 34, 0}, bruno, "b1", Serve},    // another sender is not slowed
		{[4]int{12, 0, 59, 999}, ana, "m6", Quiet},    // the minute's last millisecond
		{[4]int{12, 1, 0, 0}, ana, "m6", Serve},       // the next minute
		{[4]int{12, 1, 0, 1}, ana, "m7", Serve},       // the day's fifth
		{[4]int{12, 1, 0, 2}, ana, "m8", OverDay},     // the day's one notice
		{[4]int{12, 2, 0, 0}, ana, "m9", Quiet},       // a new minute, the same day
		{[4]int{12, 2, 0, 1}, ana, "m8", OverDay},     // a retry of the day's notice
		{[4]int{12, 3, 0, 0}, ana, "m3", Serve},       // an admitted message, retried in a later minute
		{[4]int{23, 59, 59, 999}, ana, "m10", Quiet},  // the day's last millisecond
		{[4]int{24, 0, 0, 0}, ana, "m10", Serve},      // the next day
	}
	for _, s := range steps {
		f.at(s.at[0], s.at[1], s.at[2], s.at[3])
		if got := f.gate(t, s.sender, s.id, in); got != s.want {
			t.Errorf("at %v Gate(%s, %s) = %v, want %v", f.clock.Now().Format(time.TimeOnly+".000"), s.sender, s.id, got, s.want)
		}
	}

	// No limits, no counting.
	for i := range 20 {
		if got := f.gate(t, "carla", fmt.Sprint("c", i), Inbound{}); got != Serve {
			t.Fatalf("Gate without limits = %v, want Serve", got)
		}
	}
}

func testGateOptOut(t *testing.T, newStore newStoreFunc) {
	f := newFixture(t, newStore)
	in := Inbound{Limits: Limits{PerMinute: 2}}
	stop, start := in, in
	stop.Stop, start.Start = true, true
	const ana = "16505551234"
	steps := []struct {
		id   string
		in   Inbound
		want Verdict
	}{
		{"start0", start, Serve}, // START from a sender who never stopped is a message like any
		{"stop1", stop, Stopped},
		{"stop1", stop, Stopped}, // a retry is acknowledged again
		{"stop2", stop, Quiet},   // a second STOP is not
		{"m1", in, Quiet},
		{"start1", start, Started},
		{"start1", start, Started},
		{"m2", in, Serve},
		{"m3", in, OverMinute},   // the limits count again
		{"stop3", stop, Stopped}, // STOP works over the limit
	}
	for _, s := range steps {
		if got := f.gate(t, ana, s.id, s.in); got != s.want {
			t.Errorf("Gate(%s) = %v, want %v", s.id, got, s.want)
		}
	}
	// An opt-out is never forgotten.
	f.clock.Advance(400 * 24 * time.Hour)
	if got := f.gate(t, ana, "m4", in); got != Quiet {
		t.Errorf("Gate a year after STOP = %v, want Quiet", got)
	}
}

// testGateConcurrent sends many messages of one sender at once: exactly the
// limit is served, and exactly one gets the notice.
func testGateConcurrent(t *testing.T, newStore newStoreFunc) {
	f := newFixture(t, newStore)
	const n, limit = 25, 10
	in := Inbound{Limits: Limits{PerMinute: limit, PerDay: 100}}
	got := make([]Verdict, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i] = f.gate(t, "16505551234", fmt.Sprint("wamid.", i), in) })
	}
	wg.Wait()
	count := map[Verdict]int{}
	for _, v := range got {
		count[v]++
	}
	if count[Serve] != limit || count[OverMinute] != 1 || count[Quiet] != n-limit-1 {
		t.Errorf("verdicts of %d concurrent messages = %v, want %d Serve, 1 OverMinute, %d Quiet",
			n, count, limit, n-limit-1)
	}
}

func testSpending(t *testing.T, newStore newStoreFunc) {
	f := newFixture(t, newStore)
	ctx := t.Context()
	const num, other = "106540352242922", "106540352242923"
	// 20 messages, each added twice at once (a retry that races the first
	// attempt) and once more later: each counts once.
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if err := f.AddSpend(ctx, num, fmt.Sprint("wamid.", i%20), Spend{Messages: 1, Micros: 3150}); err != nil {
				t.Errorf("AddSpend: %v", err)
			}
		})
	}
	wg.Wait()
	if err := f.AddSpend(ctx, num, "wamid.7", Spend{Messages: 1, Micros: 3150}); err != nil {
		t.Errorf("AddSpend again: %v", err)
	}
	if got, err := f.Spending(ctx, num); err != nil || got != (Spend{Messages: 20, Micros: 63000}) {
		t.Errorf("Spending = %+v, %v, want 20 messages, 63000 micros", got, err)
	}
	if got, _ := f.Spending(ctx, other); got != (Spend{}) {
		t.Errorf("Spending(other number) = %+v, want nothing", got)
	}
	for i, want := range []bool{true, false, false} {
		if first, err := f.FirstOverCeiling(ctx, num); err != nil || first != want {
			t.Errorf("FirstOverCeiling #%d = %v, %v, want %v", i+1, first, err, want)
		}
	}
	if first, _ := f.FirstOverCeiling(ctx, other); !first {
		t.Error("FirstOverCeiling(other number) = false, want true")
	}
	// Marking the ceiling keeps the day's spending.
	if got, _ := f.Spending(ctx, num); got.Messages != 20 {
		t.Errorf("Spending after FirstOverCeiling = %+v, want the 20 messages", got)
	}

	f.at(24, 0, 0, 0) // the next day starts afresh
	if got, _ := f.Spending(ctx, num); got != (Spend{}) {
		t.Errorf("Spending the next day = %+v, want nothing", got)
	}
	if first, _ := f.FirstOverCeiling(ctx, num); !first {
		t.Error("FirstOverCeiling the next day = false, want true")
	}
}

// TestFirestoreSenderLayout checks the expiry the TTL policy reads: two days
// after the day of the last message, and none while the sender is opted out.
func TestFirestoreSenderLayout(t *testing.T) {
	client := emulatorClient(t)
	clock := newClock()
	s := newFirestore(client, Options{Now: clock.Now}, testPrefix())
	const sender = "16505551234"
	expireAt := func() any {
		t.Helper()
		snap, err := s.senders.Doc(docID(sender)).Get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		v, err := snap.DataAt("expireAt")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	in := Inbound{Limits: Limits{PerMinute: 5, PerDay: 50}}
	if _, err := s.Gate(t.Context(), sender, "m1", in); err != nil {
		t.Fatal(err)
	}
	if got, want := expireAt(), time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC); !want.Equal(got.(time.Time)) {
		t.Errorf("expireAt = %v, want %v", got, want)
	}
	in.Stop = true
	if _, err := s.Gate(t.Context(), sender, "m2", in); err != nil {
		t.Fatal(err)
	}
	if got := expireAt(); got != nil {
		t.Errorf("expireAt of an opted-out sender = %v, want none", got)
	}
}
