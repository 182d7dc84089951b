package store

import (
	"hash/maphash"
	"slices"
	"time"
)

// markerTable holds Memory's markers without a pointer in the bulk of them.
// A local run, or the intake's load test, accepts hundreds of thousands of
// messages; held as a map of strings to Markers they were memory that the
// garbage collector scanned on every cycle, a cost each webhook paid
// (BENCHMARKS.md). Here a marker is a fixed-size record under a 128-bit hash
// of its id, and only the few markers with reply parts keep them aside.
type markerTable struct {
	seeds   [2]maphash.Seed
	packed  map[markerKey]packedMarker
	partsOf map[markerKey]markerParts
}

// markerKey is an id's hash under two independent seeds: two ids collide
// with a probability near 2^-128 per pair, far below any other failure.
type markerKey [2]uint64

// packedMarker is a Marker but its parts: the state as its index in states,
// times as Unix nanoseconds (0 for the zero time).
type packedMarker struct {
	state                         uint8
	counted                       bool
	attempts                      int
	leaseUntil, updatedAt, expire int64
}

// markerParts are a marker's Sent and Sending.
type markerParts struct {
	sent    []string
	sending map[string]time.Time
}

// states are the marker states by their packed index.
var states = [...]State{"", Accepted, Processing, Replied}

func newMarkerTable() markerTable {
	return markerTable{
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		packed:  make(map[markerKey]packedMarker),
		partsOf: make(map[markerKey]markerParts),
	}
}

// key hashes id. A caller that reads and then writes a marker hashes its id
// once, with this, and passes the key to get, put and delete: the intake
// does both for every message.
func (t *markerTable) key(id string) markerKey {
	return markerKey{maphash.String(t.seeds[0], id), maphash.String(t.seeds[1], id)}
}

// get returns the marker under k, and whether there is one.
func (t *markerTable) get(k markerKey) (Marker, bool) {
	p, ok := t.packed[k]
	if !ok {
		return Marker{}, false
	}
	parts := t.partsOf[k]
	return Marker{
		State:      states[p.state],
		Attempts:   p.attempts,
		LeaseUntil: unpackTime(p.leaseUntil),
		Sent:       parts.sent,
		Sending:    parts.sending,
		Counted:    p.counted,
		UpdatedAt:  unpackTime(p.updatedAt),
		ExpireAt:   unpackTime(p.expire),
	}, true
}

// put stores m as the marker under k.
func (t *markerTable) put(k markerKey, m Marker) {
	state := slices.Index(states[:], m.State)
	if state < 0 {
		panic("store: marker state " + string(m.State) + " is missing from states")
	}
	t.packed[k] = packedMarker{
		state:      uint8(state),
		counted:    m.Counted,
		attempts:   m.Attempts,
		leaseUntil: packTime(m.LeaseUntil),
		updatedAt:  packTime(m.UpdatedAt),
		expire:     packTime(m.ExpireAt),
	}
	if len(m.Sent) > 0 || len(m.Sending) > 0 {
		t.partsOf[k] = markerParts{sent: m.Sent, sending: m.Sending}
	} else {
		delete(t.partsOf, k)
	}
}

// delete forgets the marker under k.
func (t *markerTable) delete(k markerKey) {
	delete(t.packed, k)
	delete(t.partsOf, k)
}

// packTime and unpackTime keep a time as Unix nanoseconds, in UTC as the
// store's clock gives it. The zero time is 0.
func packTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func unpackTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
