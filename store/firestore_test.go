package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// emulatorProject is the project the tests use in the Firestore emulator.
const emulatorProject = "test-project"

// emulatorClient connects to the emulator named by FIRESTORE_EMULATOR_HOST.
// Without one the test is skipped, except in CI, which starts the emulator:
// there a skip would hide a failure.
func emulatorClient(tb testing.TB, opts ...option.ClientOption) *firestore.Client {
	tb.Helper()
	if os.Getenv("FIRESTORE_EMULATOR_HOST") == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("FIRESTORE_EMULATOR_HOST is not set, but CI runs the Firestore emulator")
		}
		tb.Skip("FIRESTORE_EMULATOR_HOST is not set; start the Firestore emulator to run this test")
	}
	client, err := firestore.NewClient(tb.Context(), emulatorProject, opts...)
	if err != nil {
		tb.Fatalf("firestore.NewClient: %v", err)
	}
	tb.Cleanup(func() { client.Close() })
	return client
}

// testPrefix returns a collection prefix no other test or test run uses, since
// the emulator keeps its documents for as long as it runs.
func testPrefix() string {
	return "test-" + rand.Text()[:12] + "-"
}

func TestFirestore(t *testing.T) {
	client := emulatorClient(t)
	testStore(t, func(_ *testing.T, opts Options) Store {
		return newFirestore(client, opts, testPrefix())
	})
}

// TestFirestoreLayout checks the fields the TTL policies and operators rely on.
func TestFirestoreLayout(t *testing.T) {
	client := emulatorClient(t)
	clock := newClock()
	s := newFirestore(client, Options{Now: clock.Now}, testPrefix())
	const id, user = "wamid.HBg/+=", "US.13491208655302741918"
	if _, err := s.Accept(t.Context(), []string{id}); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	turn := Turn{ID: id + "/user", Role: "user", Text: "hi", At: clock.Now()}
	if err := s.AppendTurns(t.Context(), user, turn); err != nil {
		t.Fatalf("AppendTurns: %v", err)
	}
	tests := []struct {
		ref  *firestore.DocumentRef
		want map[string]any
	}{
		{s.markers.Doc(docID(id)), map[string]any{
			"id": id, "state": string(Accepted), "expireAt": clock.Now().Add(DefaultMarkerTTL),
		}},
		{s.conversations.Doc(docID(user)).Collection(TurnsCollection).Doc(docID(turn.ID)), map[string]any{
			"id": turn.ID, "at": clock.Now(), "expireAt": clock.Now().Add(DefaultHistoryTTL),
		}},
	}
	for _, tt := range tests {
		snap, err := tt.ref.Get(t.Context())
		if err != nil {
			t.Fatalf("Get(%s): %v", tt.ref.Path, err)
		}
		for field, want := range tt.want {
			got, err := snap.DataAt(field)
			if err != nil {
				t.Errorf("%s: field %s: %v", tt.ref.Path, field, err)
				continue
			}
			if wt, ok := want.(time.Time); ok {
				if gt, ok := got.(time.Time); !ok || !gt.Equal(wt) {
					t.Errorf("%s: %s = %v, want timestamp %v", tt.ref.Path, field, got, wt)
				}
			} else if got != want {
				t.Errorf("%s: %s = %v, want %v", tt.ref.Path, field, got, want)
			}
		}
	}
}

// TestReleaseRace checks that Release leaves a marker alone when it is claimed
// between Release's read and its delete.
func TestReleaseRace(t *testing.T) {
	client := emulatorClient(t)
	s := newFirestore(client, Options{}, testPrefix())
	if _, err := s.Accept(t.Context(), []string{"m"}); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	stale, err := s.markerRef("m").Get(t.Context())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.Claim(t.Context(), "m", time.Minute); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if err := deleteAccepted(t.Context(), []*firestore.DocumentSnapshot{stale}); err != nil {
		t.Fatalf("deleteAccepted(snapshot from before the claim): %v", err)
	}
	if _, err := s.Claim(t.Context(), "m", time.Minute); !errors.Is(err, ErrClaimed) {
		t.Errorf("Claim after the stale delete: %v, want ErrClaimed (marker kept)", err)
	}
}

// TestUndoAccept checks that the Release by which a failed Accept removes the
// markers it made goes through even though the request's context, the usual
// cause of the failure, is done.
func TestUndoAccept(t *testing.T) {
	client := emulatorClient(t)
	s := newFirestore(client, Options{}, testPrefix())
	ids := []string{"made", "claimed"}
	if _, err := s.Accept(t.Context(), ids); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if _, err := s.Claim(t.Context(), "claimed", time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = s.Release(ctx, ids) // as Accept does: the next Accept shows the outcome
	got, err := s.Accept(t.Context(), ids)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if want := []Admission{New, Duplicate}; !slices.Equal(got, want) {
		t.Errorf("Accept after the release = %v, want %v", got, want)
	}
}

func TestDocID(t *testing.T) {
	hashed := func(key string) string { return fmt.Sprintf("sha256-%x", sha256.Sum256([]byte(key))) }
	long := strings.Repeat("x", maxRawID+1)
	tests := []struct {
		key, want string
	}{
		{"", hashed("")},
		{"a/b", "612f62"},
		{".", "2e"},
		{"__x__", "5f5f785f5f"},
		{strings.Repeat("x", maxRawID), strings.Repeat("78", maxRawID)},
		{long, hashed(long)},
	}
	for _, tt := range tests {
		if got := docID(tt.key); got != tt.want {
			t.Errorf("docID(%.20q) = %.40q, want %.40q", tt.key, got, tt.want)
		}
	}
}

// TestAcceptStrandsNothingOnUnknownOutcome: a Create that commits on the
// server but whose answer is lost leaves a marker Accept did not see made.
// Whatever the client makes of that (it may retry the commit and then find
// the document), the message must never come out a Duplicate: Accept either
// fails and releases it, or says it is New or Pending (the webhook answers
// 503), and Meta's redelivery after the grace queues it.
func TestAcceptStrandsNothingOnUnknownOutcome(t *testing.T) {
	var timeouts atomic.Int32
	timeouts.Store(2)
	// commitThenTimeout lets Commits through, and reports for the first two
	// that their deadline passed, as when the answer is lost on the way back.
	commitThenTimeout := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if strings.HasSuffix(method, "/Commit") && err == nil && timeouts.Add(-1) >= 0 {
			return status.Error(codes.DeadlineExceeded, "answer lost after commit")
		}
		return err
	}
	c := newClock()
	faulty := interceptedClient(t, commitThenTimeout)
	prefix := testPrefix()
	s := newFirestore(faulty, Options{Now: c.Now}, prefix)
	ids := []string{"a", "b", "c"}
	got, err := s.Accept(t.Context(), ids)
	if n := timeouts.Load(); n > 0 {
		t.Fatalf("%d injected timeouts left unused: the fault never struck", n)
	}
	for i, a := range got {
		if a != New && a != Pending {
			t.Errorf("Accept(%s) with its commit's answer lost = %v, want New or Pending", ids[i], a)
		}
	}
	clean := newFirestore(emulatorClient(t), Options{Now: c.Now}, prefix)
	if err != nil {
		// Accept failed, so it released every marker it made or may have
		// made: Meta's redelivery, at once, finds them all new.
		again, err := clean.Accept(t.Context(), ids)
		if err != nil {
			t.Fatal(err)
		}
		if want := []Admission{New, New, New}; !slices.Equal(again, want) {
			t.Fatalf("redelivery right after the failed Accept = %v, want %v: a marker of unknown outcome was left", again, want)
		}
		return
	}
	c.Advance(DefaultAcceptGrace)
	again, err := clean.Accept(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range again {
		if !a.Queue() {
			t.Errorf("redelivery of %s after the grace = %v, want it queued (New or Requeue)", ids[i], a)
		}
	}
}

// TestConfirmWritesOnlyAChange counts the commits behind a part's statuses.
// Meta sends up to three per part (sent, delivered, read), and at least once
// each; only one that settles an uncertain part has anything to write.
func TestConfirmWritesOnlyAChange(t *testing.T) {
	var commits atomic.Int32
	countCommits := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, "/Commit") {
			commits.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	client := interceptedClient(t, countCommits)
	tests := []struct {
		name   string
		before func(s *Firestore, token int) error
		want   int32
	}{
		{"uncertain part", func(s *Firestore, token int) error { return s.StartSend(t.Context(), "m", token, "audio") }, 1},
		{"part sent by Graph's answer", func(s *Firestore, _ int) error { return s.MarkSent(t.Context(), "m", "audio") }, 0},
	}
	for _, tt := range tests {
		s := newFirestore(client, Options{}, testPrefix())
		c, err := s.Claim(t.Context(), "m", time.Minute)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if err := tt.before(s, c.Attempts); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		commits.Store(0)
		for range 4 { // sent, delivered, read, and one redelivered
			if err := s.Confirm(t.Context(), "m", "audio"); err != nil {
				t.Fatalf("Confirm: %v", err)
			}
		}
		if got := commits.Load(); got != tt.want {
			t.Errorf("%s: 4 Confirms of the part made %d commits, want %d", tt.name, got, tt.want)
		}
	}
	s := newFirestore(client, Options{}, testPrefix())
	commits.Store(0)
	if err := s.Confirm(t.Context(), "gone", "audio"); err != nil {
		t.Fatalf("Confirm of an unknown message: %v", err)
	}
	if got := commits.Load(); got != 0 {
		t.Errorf("Confirm of an unknown message made %d commits, want 0", got)
	}
}

// interceptedClient is an emulator client whose unary calls go through
// interceptor, which may count or fail them. With the emulator, the client
// ignores dial options: it gets a connection of its own, with the emulator's
// owner credentials.
func interceptedClient(tb testing.TB, interceptor grpc.UnaryClientInterceptor) *firestore.Client {
	tb.Helper()
	conn, err := grpc.NewClient(os.Getenv("FIRESTORE_EMULATOR_HOST"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(ownerCreds{}),
		grpc.WithUnaryInterceptor(interceptor))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return emulatorClient(tb, option.WithGRPCConn(conn))
}

// ownerCreds is what the Firestore client sends the emulator: full access.
type ownerCreds struct{}

func (ownerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}
func (ownerCreds) RequireTransportSecurity() bool { return false }

// TestSpendingAtMidnight checks that a day's spending document holds that
// day's date when the clock turns midnight between the store's reads of it.
func TestSpendingAtMidnight(t *testing.T) {
	client := emulatorClient(t)
	midnight := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	// Every read of the clock is a microsecond later, from just before
	// midnight: a second read in one call lands on the next day.
	var reads atomic.Int64
	now := func() time.Time { return midnight.Add(time.Duration(reads.Add(1)-2) * time.Microsecond) }
	s := newFirestore(client, Options{Now: now}, testPrefix())
	const number = "106540352242922"
	for _, id := range []string{"m1", "m2"} {
		reads.Store(0)
		if _, err := s.Accept(t.Context(), []string{id}); err != nil {
			t.Fatalf("Accept: %v", err)
		}
		reads.Store(0)
		if err := s.AddSpend(t.Context(), number, id, Spend{Messages: 1, Micros: 10}); err != nil {
			t.Fatalf("AddSpend: %v", err)
		}
		reads.Store(0)
		if _, err := s.FirstOverCeiling(t.Context(), number); err != nil {
			t.Fatalf("FirstOverCeiling: %v", err)
		}
	}
	docs, err := s.spending.Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatalf("spending documents: %v", err)
	}
	if len(docs) == 0 {
		t.Fatal("no spending document written")
	}
	for _, doc := range docs {
		var d spendDoc
		if err := doc.DataTo(&d); err != nil {
			t.Fatalf("%s: %v", doc.Ref.ID, err)
		}
		if want := docID(number + "/" + d.Day); doc.Ref.ID != want {
			t.Errorf("document %s holds day %q (%+v): it belongs in %s", doc.Ref.ID, d.Day, d, want)
		}
	}
}
