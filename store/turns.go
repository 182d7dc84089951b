package store

import (
	"fmt"
	"time"
)

// prepareTurns checks that every turn has an ID and returns copies with a
// zero At set to now and every At kept the way Firestore keeps it.
func (o Options) prepareTurns(turns []Turn) ([]Turn, error) {
	now := o.now()
	out := make([]Turn, len(turns))
	for i, t := range turns {
		if t.ID == "" {
			return nil, fmt.Errorf("append turns: turn %d has no ID", i)
		}
		if t.At.IsZero() {
			t.At = now
		}
		t.At = t.At.UTC().Truncate(time.Microsecond)
		out[i] = t
	}
	return out, nil
}
