package store

import (
	"errors"
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
		m := c.m
		if err := admit(time.Minute, &got)(&m, now); !errors.Is(err, c.wantErr) {
			t.Errorf("admit of a marker %s: error %v, want %v", c.m.State, err, c.wantErr)
		}
		if got != c.want {
			t.Errorf("admit of a marker %s after an earlier New: got %v, want %v", c.m.State, got, c.want)
		}
	}
}
