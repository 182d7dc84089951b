package store

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestAdmitOverwritesEarlierRun checks that admit reports a refusal through
// *got too: Firestore's compare-and-set runs it again after losing a race, and
// an admission left over from the lost run would queue the message twice.
func TestAdmitOverwritesEarlierRun(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		m       Marker
		want    Admission
		wantErr error
	}{
		{Marker{State: Processing}, Duplicate, errDuplicate},
		{Marker{State: Accepted, UpdatedAt: now}, Pending, errPending},
	} {
		got := New // from the run that lost the race
		if _, err := admit(time.Minute, &got)(c.m, now); !errors.Is(err, c.wantErr) {
			t.Errorf("admit of a marker %s: error %v, want %v", c.m.State, err, c.wantErr)
		}
		if got != c.want {
			t.Errorf("admit of a marker %s after an earlier New: got %v, want %v", c.m.State, got, c.want)
		}
	}
}

// TestConfirm checks which statuses confirm records: a part gets up to three
// (sent, delivered, read), and each would otherwise be a store write.
func TestConfirm(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	started := map[string]time.Time{"audio": now.Add(-time.Second)}
	tests := []struct {
		name    string
		m       Marker
		wantErr error // errUnchanged: nothing to write
	}{
		{"no marker", Marker{}, errUnchanged},
		{"uncertain", Marker{State: Processing, Sending: started}, nil},
		{"not recorded at all", Marker{State: Processing}, nil},
		{"sent", Marker{State: Processing, Sent: []string{"text.1", "audio"}}, errUnchanged},
		{"sent and uncertain again", Marker{State: Processing, Sent: []string{"audio"}, Sending: started}, nil},
		{"another part sent", Marker{State: Replied, Sent: []string{"text.1"}}, nil},
	}
	for _, tt := range tests {
		m, err := confirm("audio")(tt.m.clone(), now)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: confirm(audio) = %v, want %v", tt.name, err, tt.wantErr)
		}
		if err != nil {
			continue
		}
		if _, ok := m.Uncertain("audio"); ok || !slices.Contains(m.Sent, "audio") {
			t.Errorf("%s: after confirm(audio): sent %q, sending %v; want audio sent", tt.name, m.Sent, m.Sending)
		}
	}
}
