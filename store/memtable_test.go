package store

import (
	"reflect"
	"testing"
	"time"
)

// TestMarkerTableRoundTrip: a marker put into the table comes back equal,
// every field of it, in every state, with and without parts.
func TestMarkerTableRoundTrip(t *testing.T) {
	t.Parallel()
	// The packing names each field of Marker: a new field must be packed
	// too, and counted here.
	if n := reflect.TypeFor[Marker]().NumField(); n != 8 {
		t.Fatalf("Marker has %d fields; pack the new one in markerTable", n)
	}
	at := time.Date(2026, 11, 30, 9, 0, 0, 123456000, time.UTC)
	tab := newMarkerTable()
	for i, state := range states {
		m := Marker{State: state, Attempts: i, LeaseUntil: at.Add(time.Minute), UpdatedAt: at, ExpireAt: at.Add(48 * time.Hour)}
		if i%2 == 1 {
			m.Sent = []string{"text.1"}
			m.Sending = map[string]time.Time{"audio": at}
			m.Counted = true
		}
		id := "wamid." + string(state)
		tab.put(tab.key(id), m)
		got, ok := tab.get(tab.key(id))
		if !ok || !reflect.DeepEqual(got, m) {
			t.Errorf("put %+v, got %+v (%v)", m, got, ok)
		}
	}
	tab.put(tab.key("wamid.bare"), Marker{State: Accepted})
	if got, _ := tab.get(tab.key("wamid.bare")); !reflect.DeepEqual(got, Marker{State: Accepted}) {
		t.Errorf("zero times came back as %+v", got)
	}
	tab.put(tab.key("wamid."+string(Processing)), Marker{State: Replied, UpdatedAt: at})
	if got, _ := tab.get(tab.key("wamid." + string(Processing))); got.Sent != nil || got.Sending != nil {
		t.Errorf("parts outlived a put without them: %+v", got)
	}
	tab.delete(tab.key("wamid.bare"))
	if _, ok := tab.get(tab.key("wamid.bare")); ok {
		t.Error("deleted marker still there")
	}
	if _, ok := tab.get(tab.key("wamid.never")); ok {
		t.Error("a marker for an id never put")
	}
}
