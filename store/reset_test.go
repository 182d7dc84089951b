package store

import (
	"fmt"
	"testing"
)

// testResetHistory checks that a reset forgets one user's turns, and only
// that user's, that a conversation goes on after it, and that resetting an
// empty conversation is no error.
func testResetHistory(t *testing.T, newStore newStoreFunc) {
	f := newFixture(t, newStore)
	ctx := t.Context()
	const ana, bruno = "16505551234", "US.998877"
	var turns []Turn
	for i := range 3 {
		turns = append(turns, Turn{ID: fmt.Sprintf("t%d", i), Role: "user", Text: fmt.Sprint("message ", i)})
	}
	if err := f.AppendTurns(ctx, ana, turns...); err != nil {
		t.Fatalf("AppendTurns(ana): %v", err)
	}
	if err := f.AppendTurns(ctx, bruno, turns[0]); err != nil {
		t.Fatalf("AppendTurns(bruno): %v", err)
	}

	if err := f.ResetHistory(ctx, ana); err != nil {
		t.Fatalf("ResetHistory(ana): %v", err)
	}
	if got := f.history(t, ana, 10); len(got) != 0 {
		t.Errorf("History(ana) after reset = %v, want none", got)
	}
	if got := f.history(t, bruno, 10); len(got) != 1 {
		t.Errorf("History(bruno) after resetting ana = %v, want his one turn", got)
	}
	if err := f.ResetHistory(ctx, ana); err != nil {
		t.Errorf("ResetHistory of an empty conversation: %v", err)
	}
	if err := f.ResetHistory(ctx, "nobody"); err != nil {
		t.Errorf("ResetHistory of an unknown user: %v", err)
	}

	// A turn appended again after the reset, even with an old ID, is new.
	if err := f.AppendTurns(ctx, ana, Turn{ID: "t0", Role: "user", Text: "again"}); err != nil {
		t.Fatalf("AppendTurns after reset: %v", err)
	}
	if got := f.history(t, ana, 10); len(got) != 1 || got[0].Text != "again" {
		t.Errorf("History(ana) after reset and append = %v, want the one new turn", got)
	}
}
