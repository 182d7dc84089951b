package store

import (
	"fmt"
	"time"
)

// prepareTurns checks that every turn has an ID and returns copies with
// every At kept the way Firestore keeps it. Turns without an At are dated
// now, a microsecond apart in the order given, so that the turns of one
// append (a message and its answer) read back in that order. A repeated ID
// keeps its last turn, as a second append would, so that no write touches
// one document twice.
func (o Options) prepareTurns(turns []Turn) ([]Turn, error) {
	now := o.now()
	out := make([]Turn, 0, len(turns))
	index := make(map[string]int, len(turns))
	for i, t := range turns {
		if t.ID == "" {
			return nil, fmt.Errorf("append turns: turn %d has no ID", i)
		}
		if t.At.IsZero() {
			t.At = now.Add(time.Duration(i) * time.Microsecond)
		}
		t.At = t.At.UTC().Truncate(time.Microsecond)
		if k, ok := index[t.ID]; ok {
			out[k] = t
			continue
		}
		index[t.ID] = len(out)
		out = append(out, t)
	}
	return out, nil
}
