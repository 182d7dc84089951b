package service_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/genai"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
	"github.com/patternai/whatsapp-node/internal/faultnet"
	"github.com/patternai/whatsapp-node/internal/logtest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue/queuetest"
	"github.com/patternai/whatsapp-node/service"
	"github.com/patternai/whatsapp-node/speech/speechtest"
	"github.com/patternai/whatsapp-node/store"
)

// faultRates are the chances of each injected fault.
type faultRates struct {
	storeCut   float64 // a Firestore answer lost after the server acted on it
	sendDrop   float64 // a send dropped before Graph took it
	sendLose   float64 // a send taken by Graph whose answer is lost
	sendSlow   float64 // a send slower than the lease
	status     float64 // a sent message's status webhook reaches us
	llmFailure float64 // the model fails for good (the fallback must go out)
}

// TestFaults is the fault suite: production's path (Firestore and Pub/Sub
// emulators, the Graph, Gemini and Speech fakes) under random, seeded faults
// (store answers lost after commit, sends dropped or lost or slower than the
// lease, status webhooks that come or not, the process killed at random
// points and restarted), while a stand-in for Meta delivers text messages,
// several from each sender in quick succession, and retries each until it
// gets a 200. It then checks, per message, that exactly one answer or
// exactly one fallback reached the user, and per sender, that the replies
// came in the order of the messages and that the model, answering one,
// had been sent the exchanges of the earlier ones.
//
// CI runs a short seeded run. The long run is
//
//	FAULT_MESSAGES=200 FAULT_SEED=7 go test -run TestFaults -v -timeout 30m ./service
func TestFaults(t *testing.T) {
	requireEmulators(t)
	messages := envInt(t, "FAULT_MESSAGES", 30)
	seed := uint64(envInt(t, "FAULT_SEED", 1))
	// Meta sends a status for every message it takes, at least once; with
	// FAULT_STATUS below 1 some never come, as when statuses are late or
	// the webhook is down for longer than the confirmation window.
	status := float64(envInt(t, "FAULT_STATUS_PERCENT", 100)) / 100
	rates := faultRates{storeCut: 0.01, sendDrop: 0.08, sendLose: 0.08, sendSlow: 0.03, status: status, llmFailure: 0.1}
	// FAULT_REPLY_MODE=audio runs the suite on the voice path: the answer
	// streamed into speech, the voice note staged, uploaded and sent.
	mode := cmp.Or(os.Getenv("FAULT_REPLY_MODE"), "text")
	r := newFaultRun(t, seed, rates, map[string]string{
		"CLAIM_LEASE":         "1s",
		"SEND_CONFIRM_WINDOW": "5s",
		"REPLY_MODE":          mode,
	})
	r.killEvery(1500*time.Millisecond, 3*time.Second)
	start := time.Now()
	r.deliver(messages)
	// The kills go on while most replies are made, then stop: a message
	// that is lost stays unanswered however long the service then runs in
	// peace, while one that was only held up gets its answer.
	r.awaitReplies(messages*4/5, 30*time.Second)
	r.stopKilling()
	r.awaitReplies(messages, 3*time.Minute)
	// Late copies would come from a send repeated after its confirmation
	// window, or from a zombie attempt: give them time to show.
	time.Sleep(7 * time.Second)

	counts := r.check(messages, status == 1)
	r.checkOrder(messages)
	r.checkLogs(messages)
	t.Logf("seed %d: %d messages in %v; %d answers, %d fallbacks, %d doubled; faults: %d kills, %d store cuts, %d sends dropped, %d lost, %d slow, %d statuses, %d model failures",
		seed, messages, time.Since(start).Round(time.Second), counts.answers, counts.fallbacks, counts.doubled, r.kills,
		r.n("storeCut"), r.n("sendDrop"), r.n("sendLose"), r.n("sendSlow"), r.n("status"), r.n("llmFailure"))
	if r.kills == 0 || r.n("sendLose") == 0 || r.n("sendDrop") == 0 {
		t.Errorf("the run injected too few faults to prove anything: %d kills, %d lost, %d dropped sends",
			r.kills, r.n("sendLose"), r.n("sendDrop"))
	}
}

// TestRecoveryAfterKill measures how soon a message is answered after the
// process answering it is killed. The model takes 2 s, each kill lands at a
// random point while it thinks, and the process is back a second later.
//
// By default, as in CI, it kills twice with a 3 s lease (renewed every
// second) and the suite's push retries (1 s to 5 s), and each message must
// be answered, once, within recoveryLimit of its kill. FAULT_RECOVERY=N
// measures N kills with production's settings (a 30 s lease, renewed every
// 10 s; a 60 s confirmation window; the subscription's 600 s ack deadline
// and 10 s minimum retry delay), which takes minutes:
//
//	FAULT_RECOVERY=10 go test -run TestRecoveryAfterKill -v -timeout 30m ./service
func TestRecoveryAfterKill(t *testing.T) {
	requireEmulators(t)
	kills := envInt(t, "FAULT_RECOVERY", 0)
	settings, limit := map[string]string(nil), 5*time.Minute
	if kills == 0 {
		kills, settings, limit = 2, map[string]string{"CLAIM_LEASE": "3s"}, recoveryLimit
	}
	r := newFaultRun(t, 3, faultRates{status: 1}, settings)
	r.llmDelay = 2 * time.Second
	r.kill()
	r.start()
	var took []time.Duration
	for i := range kills {
		r.deliver1(i)
		r.mu.Lock()
		wait := time.Duration(200+r.rng.IntN(1600)) * time.Millisecond
		r.mu.Unlock()
		time.Sleep(wait)
		killed := time.Now()
		r.kill()
		time.Sleep(time.Second)
		r.start()
		for len(r.outcome()[r.id(i)]) == 0 && time.Since(killed) < limit {
			time.Sleep(100 * time.Millisecond)
		}
		took = append(took, time.Since(killed))
		t.Logf("kill %d: answered %v after the kill", i+1, took[i].Round(100*time.Millisecond))
		if took[i] >= limit {
			t.Errorf("message %d: not answered within %v of its kill", i, limit)
		}
	}
	time.Sleep(2 * time.Second)
	r.check(kills, true)
	slices.Sort(took)
	t.Logf("recovery after %d kills: median %v, worst %v", kills, took[len(took)/2].Round(100*time.Millisecond), took[len(took)-1].Round(100*time.Millisecond))
}

// recoveryLimit bounds the short TestRecoveryAfterKill's recovery: the dead
// attempt's 3 s lease lapses at most 3 s after the kill, Pub/Sub redelivers
// at most 5 s after a failed push, and the answer takes 2 s; the rest is
// room for a loaded machine. A message lost, or held until its attempt's
// whole budget ran out, fails it.
const recoveryLimit = 15 * time.Second

func requireEmulators(t *testing.T) {
	t.Helper()
	for _, v := range []string{"FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"} {
		if os.Getenv(v) == "" {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not set; CI must start the emulator", v)
			}
			t.Skipf("%s is not set; start the emulator to run this test", v)
		}
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// faultRun is one run of the suite: the fakes, the instance of the service
// now running (restarted after each kill), and Meta's side.
type faultRun struct {
	t        *testing.T
	env      map[string]string
	graph    *graphapitest.Server
	llm      *geminitest.Server
	speech   *speechtest.Server
	front    *faultnet.Proxy // the service's fixed address: Meta and Pub/Sub post here
	tags     *store.Tags
	firstore string
	runID    string // makes this run's wamids new to the shared emulator
	llmDelay time.Duration

	rates faultRates

	mu       sync.Mutex
	rng      *rand.Rand
	injected map[string]int
	inst     *instance
	kills    int
	stop     chan struct{}
	stopped  chan struct{}
	http     *http.Client
	logs     logtest.Buffer // every instance's lines, at production's level
}

// instance is one process of the service: its server and the proxies
// through which it reaches everything, all cut at once by kill.
type instance struct {
	server  *http.Server
	proxies []*faultnet.Proxy
}

func newFaultRun(t *testing.T, seed uint64, rates faultRates, settings map[string]string) *faultRun {
	t.Helper()
	r := &faultRun{t: t, rng: rand.New(rand.NewPCG(seed, seed)), injected: map[string]int{}, rates: rates,
		firstore: os.Getenv("FIRESTORE_EMULATOR_HOST"), http: &http.Client{Timeout: 30 * time.Second}}
	var err error
	if r.tags, err = store.NewTags(secret); err != nil {
		t.Fatal(err)
	}
	if r.front, err = faultnet.Listen("127.0.0.1:0", "", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.front.Close)
	r.graph = graphapitest.NewServer(t, graphapitest.WithOnMessage(func(m graphapitest.Message) {
		if r.chance("status", rates.status) {
			go r.postStatus(m)
		}
	}))
	var sends atomic.Int32
	r.graph.SetFaults(func(kind graphapitest.Kind) graphapitest.Fault {
		if kind != graphapitest.KindMessages {
			return graphapitest.Fault{}
		}
		// The first sends meet one fault of each kind, so that even a short
		// run proves something whatever the draws; the rest are drawn.
		switch n := sends.Add(1); {
		case n == 1 && rates.sendDrop > 0:
			r.count("sendDrop")
			return graphapitest.Fault{Drop: true}
		case n == 2 && rates.sendLose > 0:
			r.count("sendLose")
			return graphapitest.Fault{Lose: true}
		case n == 3 && rates.sendSlow > 0:
			r.count("sendSlow")
			return graphapitest.Fault{Delay: 1500 * time.Millisecond}
		}
		switch {
		case r.chance("sendDrop", rates.sendDrop):
			return graphapitest.Fault{Drop: true}
		case r.chance("sendLose", rates.sendLose):
			return graphapitest.Fault{Lose: true}
		case r.chance("sendSlow", rates.sendSlow):
			return graphapitest.Fault{Delay: 1500 * time.Millisecond}
		}
		return graphapitest.Fault{}
	})
	r.llm = geminitest.NewServer(t)
	r.llm.SetFailures(func() bool { return r.chance("llmFailure", rates.llmFailure) }, http.StatusBadRequest)
	r.speech = speechtest.NewServer(t)

	suffix := time.Now().UnixNano()
	r.runID = strconv.FormatInt(suffix, 36)
	project := "faults-project"
	topic := fmt.Sprintf("faults-%d", suffix)
	r.env = map[string]string{
		"WHATSAPP_APP_SECRET":   secret,
		"WHATSAPP_VERIFY_TOKEN": "faults-verify",
		"WHATSAPP_ACCESS_TOKEN": r.graph.Token,
		"GOOGLE_CLOUD_PROJECT":  project,
		"MEDIA_DIR":             t.TempDir(),
		"STORE":                 "firestore",
		"QUEUE":                 "pubsub",
		"PUBSUB_TOPIC":          topic,
		"PUBSUB_VERIFY":         "false",
		"PUBSUB_EMULATOR_HOST":  os.Getenv("PUBSUB_EMULATOR_HOST"),
		"REPLY_MODE":            "text",
		// The suite checks exactly once, not the guard: every message must
		// be answered, however many runs the emulator has seen today.
		"SENDER_LIMIT_PER_MINUTE": "0",
		"SENDER_LIMIT_PER_DAY":    "0",
		"NUMBER_DAILY_MESSAGES":   "0",
		"NUMBER_DAILY_COST_USD":   "0",
	}
	for k, v := range settings {
		r.env[k] = v
	}

	ps := queuetest.PubSub(t, project)
	ctx := context.Background()
	topicName := "projects/" + project + "/topics/" + topic
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topicName}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                  fmt.Sprintf("projects/%s/subscriptions/faults-%d", project, suffix),
		Topic:                 topicName,
		PushConfig:            &pubsubpb.PushConfig{PushEndpoint: "http://" + r.front.Addr() + "/process"},
		EnableMessageOrdering: true,
		AckDeadlineSeconds:    r.ackDeadline(),
		RetryPolicy:           r.retryPolicy(),
	}); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(func() { r.kill() })
	return r
}

// retryPolicy is production's (10 s to 600 s, as deploy.sh sets it) when
// the run uses production's lease, and 1 s to 5 s with the short leases of
// the suite, whose faults would otherwise push redeliveries minutes away.
func (r *faultRun) retryPolicy() *pubsubpb.RetryPolicy {
	lo, hi := 10*time.Second, 600*time.Second
	if r.env["CLAIM_LEASE"] != "" {
		lo, hi = time.Second, 5*time.Second
	}
	return &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(lo), MaximumBackoff: durationpb.New(hi)}
}

// ackDeadline is production's (600 s, as deploy.sh sets it) when the run
// uses production's lease, and 10 s with the short leases of the suite.
func (r *faultRun) ackDeadline() int32 {
	if r.env["CLAIM_LEASE"] == "" {
		return 600
	}
	return 10
}

// chance draws from the seeded source and counts the faults it injects.
func (r *faultRun) chance(fault string, p float64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rng.Float64() >= p {
		return false
	}
	r.injected[fault]++
	return true
}

// count records a fault injected without a draw.
func (r *faultRun) count(fault string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.injected[fault]++
}

func (r *faultRun) n(fault string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.injected[fault]
}

// start runs a new instance behind the front proxy. Its Firestore client
// takes the emulator's address from the environment when it is built, so
// pointing that at a proxy of the instance's own is what lets kill cut it.
func (r *faultRun) start() {
	t := r.t
	inst := &instance{}
	proxy := func(target string, cut func() bool) string {
		p, err := faultnet.Listen("127.0.0.1:0", target, cut)
		if err != nil {
			t.Fatal(err)
		}
		inst.proxies = append(inst.proxies, p)
		return p.Addr()
	}
	env := maps.Clone(r.env)
	env["GRAPH_API_BASE_URL"] = "http://" + proxy(trimScheme(r.graph.URL), nil)
	env["GOOGLE_VERTEX_BASE_URL"] = "http://" + proxy(trimScheme(r.llm.URL), nil)
	inst.proxies[len(inst.proxies)-1].SetDelay(r.llmDelay)
	speechAddr := proxy(r.speech.Addr, nil)
	env["SPEECH_ENDPOINT"], env["TTS_ENDPOINT"] = speechAddr, speechAddr
	firestoreAddr := proxy(r.firstore, func() bool { return r.chance("storeCut", r.rates.storeCut) })

	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	os.Setenv("FIRESTORE_EMULATOR_HOST", firestoreAddr)
	svc, err := service.New(context.Background(), cfg, logging.New(&r.logs, slog.LevelInfo))
	os.Setenv("FIRESTORE_EMULATOR_HOST", r.firstore)
	if err != nil {
		t.Fatal(err)
	}
	inst.server = &http.Server{Handler: svc}
	srvLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go inst.server.Serve(srvLn)
	r.mu.Lock()
	r.inst = inst
	r.mu.Unlock()
	r.front.SetTarget(srvLn.Addr().String())
}

// kill cuts the running instance off from everything at once: the requests
// it is serving (Meta's and Pub/Sub's see their connection reset) and every
// dependency. Whatever its goroutines do afterwards reaches nobody, as after
// a SIGKILL.
func (r *faultRun) kill() {
	r.mu.Lock()
	inst := r.inst
	r.inst = nil
	r.mu.Unlock()
	if inst == nil {
		return
	}
	r.front.SetTarget("")
	r.front.CloseConns()
	inst.server.Close()
	for _, p := range inst.proxies {
		p.Close()
	}
}

// killEvery kills the instance at random intervals between min and max and
// restarts it a moment later, until stopKilling.
func (r *faultRun) killEvery(lo, hi time.Duration) {
	r.stop, r.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.stopped)
		for {
			r.mu.Lock()
			wait := lo + time.Duration(r.rng.Int64N(int64(hi-lo)))
			down := time.Duration(100+r.rng.IntN(400)) * time.Millisecond
			r.mu.Unlock()
			select {
			case <-r.stop:
				return
			case <-time.After(wait):
			}
			r.kill()
			r.mu.Lock()
			r.kills++
			r.mu.Unlock()
			time.Sleep(down)
			r.start()
		}
	}()
}

func (r *faultRun) stopKilling() {
	close(r.stop)
	<-r.stopped
}

// faultSenders is how many users send the run's messages: message i is
// from user i % faultSenders, so each sends several.
const faultSenders = 5

// deliver sends n text messages, as Meta does: each webhook is posted until
// it is answered 200. The senders send at once, each its messages one after
// another, the next as soon as the last is taken: the order in which the
// service took one sender's messages is then their order, which checkOrder
// holds the replies to.
func (r *faultRun) deliver(n int) {
	var wg sync.WaitGroup
	for s := range min(n, faultSenders) {
		wg.Go(func() {
			for i := s; i < n; i += faultSenders {
				r.postUntilOK(textWebhook(r.id(i), r.sender(i), r.question(i)), 5*time.Minute)
			}
		})
	}
	wg.Wait()
}

// id is the wamid of message i of this run.
func (r *faultRun) id(i int) string { return fmt.Sprintf("wamid.faults.%s.%d", r.runID, i) }

// sender is the user who sends message i.
func (r *faultRun) sender(i int) string { return fmt.Sprintf("1650555%04d", i%faultSenders) }

// question is the text of message i. It names the run, since the senders'
// conversations in the shared emulator hold the turns of earlier runs.
func (r *faultRun) question(i int) string {
	return fmt.Sprintf("Question number %d of run %s?", i, r.runID)
}

// answer is the answer to message i: the fake model's echo.
func (r *faultRun) answer(i int) string { return "You said: " + r.question(i) }

// deliver1 delivers message i alone.
func (r *faultRun) deliver1(i int) {
	r.postUntilOK(textWebhook(r.id(i), r.sender(0), r.question(i)), time.Minute)
}

// postUntilOK posts a signed webhook until it is answered 200, as Meta
// retries anything else.
func (r *faultRun) postUntilOK(body []byte, limit time.Duration) {
	deadline := time.Now().Add(limit)
	var last any
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.front.Addr()+"/", bytes.NewReader(body))
		req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(body, secret))
		resp, err := r.http.Do(req)
		last = err
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.StatusCode
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Errorf("a webhook was never answered 200 within %v (last: %v): %.300s", limit, last, body)
}

// postStatus posts the "sent" status of m, echoing its tag, after a moment.
func (r *faultRun) postStatus(m graphapitest.Message) {
	time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
	status := map[string]any{
		"id": m.ID, "status": "sent", "timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"recipient_id": m.To, "biz_opaque_callback_data": m.CallbackData,
	}
	body, _ := json.Marshal(envelope(map[string]any{"statuses": []any{status}}))
	r.postUntilOK(body, time.Minute)
}

// checkLogs: under every fault the run injected (errors from Firestore, from
// Graph, from the model; kills mid-reply), no line at production's level
// names a user: no wamid (raw, or hex-encoded as in Firestore's document
// names), no sender's number, no message text.
func (r *faultRun) checkLogs(n int) {
	logs := r.logs.String()
	if !strings.Contains(logs, `"severity":"ERROR"`) {
		r.t.Error("the run logged no error: the check below saw no fault's line")
	}
	secrets := []string{}
	for i := range n {
		id := r.id(i)
		secrets = append(secrets, id, hex.EncodeToString([]byte(id)), r.question(i), r.sender(i))
	}
	for _, secret := range secrets {
		if i := strings.Index(logs, secret); i >= 0 {
			line := logs[strings.LastIndexByte(logs[:i], '\n')+1:]
			line, _, _ = strings.Cut(line, "\n")
			r.t.Errorf("logs name a user (%q): %s", secret, line)
		}
	}
}

// textWebhook is Meta's notification of one text message.
func textWebhook(id, sender, text string) []byte {
	msg := map[string]any{"from": sender, "id": id, "timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"type": "text", "text": map[string]string{"body": text}}
	body, _ := json.Marshal(envelope(map[string]any{
		"contacts": []any{map[string]any{"profile": map[string]string{"name": "Faults"}, "wa_id": sender}},
		"messages": []any{msg},
	}))
	return body
}

func envelope(value map[string]any) map[string]any {
	value["messaging_product"] = "whatsapp"
	value["metadata"] = map[string]string{"display_phone_number": "15550001111", "phone_number_id": "106540352242922"}
	return map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": "102290129340398", "changes": []any{map[string]any{"field": "messages", "value": value}}}}}
}

// outcome is what reached the user for each inbound message, by part.
func (r *faultRun) outcome() map[string]map[string]int {
	got := map[string]map[string]int{}
	for _, m := range r.graph.Messages() {
		id, part, ok := r.tags.Open(m.CallbackData)
		if !ok {
			r.t.Errorf("a message went out without our tag: %q", m.Text)
			continue
		}
		if got[id] == nil {
			got[id] = map[string]int{}
		}
		got[id][part]++
	}
	return got
}

// awaitReplies waits until every one of n messages got something.
func (r *faultRun) awaitReplies(n int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && len(r.outcome()) < n {
		time.Sleep(100 * time.Millisecond)
	}
}

type faultCounts struct{ answers, fallbacks, doubled int }

// check asserts the invariant for each of n messages: exactly one answer
// (text.1) or exactly one fallback reached the user; none lost, none doubled.
// Without every status (strict false), a send whose answer was lost and that
// no status confirmed is sent again after the window, as documented: such
// doubles are counted, not failed, while loss and an answer beside a
// fallback still fail.
func (r *faultRun) check(n int, strict bool) faultCounts {
	got := r.outcome()
	answer := r.answerPart()
	var c faultCounts
	for i := range n {
		parts := got[r.id(i)]
		switch {
		case parts[answer] == 1 && len(parts) == 1:
			c.answers++
		case parts[store.FallbackPart] == 1 && len(parts) == 1:
			c.fallbacks++
		case !strict && len(parts) == 1 && (parts[answer] > 1 || parts[store.FallbackPart] > 1):
			c.doubled++
		default:
			r.t.Errorf("message %d: the user got %v, want exactly one answer or one fallback", i, parts)
		}
	}
	return c
}

// answerPart is the part that carries the model's answer in the run's mode.
func (r *faultRun) answerPart() string {
	if r.env["REPLY_MODE"] == "audio" {
		return "audio"
	}
	return "text.1"
}

// checkOrder asserts, per sender, that its messages were answered in order:
//
//   - The replies reached the sender in the order of its messages (the first
//     copy of each: a copy repeated after its confirmation window is the
//     risk check counts).
//   - Each time the model was asked about a message, the conversation it
//     was sent held only whole exchanges (a message, then the answer to it)
//     of the sender's earlier messages, oldest first, and among them the
//     latest earlier message that got an answer: that one was answered, and
//     its exchange recorded, before this one was begun. A missing exchange
//     is excused only by a loss the pipeline logs: the turns not recorded
//     ("conversation not recorded"), or the history not read ("history
//     unavailable"). A message given up on with part of its answer out
//     ("part of the answer went out; it stands") is no excuse: its exchange
//     is recorded too.
func (r *faultRun) checkOrder(n int) {
	t := r.t
	ids := logging.NewIDs(secret)
	msgs := map[string]turn{} // by wamid, by the message's text and by its answer's text
	for i := range n {
		msgs[r.id(i)], msgs[r.question(i)] = turn{i, genai.RoleUser}, turn{i, genai.RoleUser}
		msgs[r.answer(i)] = turn{i, genai.RoleModel}
	}

	replied := map[string][]int{} // by sender: the messages replied to, in the order of their first replies
	seen := map[int]bool{}
	for _, m := range r.graph.Messages() {
		id, _, _ := r.tags.Open(m.CallbackData) // check reports a reply without our tag
		if msg, ok := msgs[id]; ok && !seen[msg.msg] {
			seen[msg.msg] = true
			replied[m.To] = append(replied[m.To], msg.msg)
		}
	}
	for sender, got := range replied {
		if !slices.IsSorted(got) {
			t.Errorf("sender %s got the replies to its messages %v in that order, want %v", sender, got, slices.Sorted(slices.Values(got)))
		}
	}

	logged := map[string]map[string]bool{} // by log message: the hashed ids it names
	for line := range strings.Lines(r.logs.String()) {
		var l struct {
			Message string `json:"message"`
			MsgID   string `json:"msg_id"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.MsgID != "" {
			if logged[l.Message] == nil {
				logged[l.Message] = map[string]bool{}
			}
			logged[l.Message][l.MsgID] = true
		}
	}
	unrecorded := func(i int) bool { return logged["conversation not recorded"][ids.Of(r.id(i))] }
	unread := func(i int) bool { return logged["history unavailable; answering without it"][ids.Of(r.id(i))] }

	outcome := r.outcome()
requests:
	for _, req := range r.llm.Requests() {
		// convo is the run's turns among those the model was sent; the
		// last is the message being answered.
		var convo []turn
		for _, c := range req.Contents {
			var text strings.Builder
			for _, p := range c.Parts {
				text.WriteString(p.Text)
			}
			if tn, ok := msgs[text.String()]; ok && tn.role == c.Role {
				convo = append(convo, tn)
			}
		}
		if len(convo) == 0 || convo[len(convo)-1].role != genai.RoleUser {
			t.Errorf("the model was sent %v, want a message of the run last", convo)
			continue
		}
		k := convo[len(convo)-1].msg
		var earlier []int
		for p := 0; p < len(convo)-1; p += 2 {
			j := convo[p].msg
			if convo[p] != (turn{j, genai.RoleUser}) || convo[p+1] != (turn{j, genai.RoleModel}) ||
				r.sender(j) != r.sender(k) || j >= k || len(earlier) > 0 && j <= earlier[len(earlier)-1] {
				t.Errorf("the model answering message %d was sent %v, want whole exchanges of its sender's earlier messages, oldest first", k, convo)
				continue requests
			}
			earlier = append(earlier, j)
		}
		if unread(k) {
			continue
		}
		for j := k - faultSenders; j >= 0; j -= faultSenders {
			if outcome[r.id(j)][r.answerPart()] == 0 || unrecorded(j) {
				continue
			}
			if !slices.Contains(earlier, j) {
				t.Errorf("the model answering message %d was sent %v, without message %d's exchange, answered before it", k, convo, j)
			}
			break
		}
	}
}

// turn is a turn of the run's conversations: a message, or its answer.
type turn struct {
	msg  int
	role string
}

// String reads "u3" for message 3, "m3" for its answer.
func (tn turn) String() string { return fmt.Sprintf("%c%d", tn.role[0], tn.msg) }

func trimScheme(u string) string { return u[len("http://"):] }
