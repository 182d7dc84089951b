// Command load measures the webhook on loopback. It has three modes:
//
//	load -url http://127.0.0.1:8080/ -c 32 -d 10s   signed POSTs, each a new wamid; prints latency and throughput
//	load -bare 127.0.0.1:8081                        serves a bare net/http handler that only checks the signature,
//	                                                 the baseline the webhook is compared with
//	load -intake 127.0.0.1:8082                      serves the webhook handlers as cmd/local builds them (memory
//	                                                 store, in-process queue, JSON logs to stdout) with reply
//	                                                 workers that drop each job, to measure the intake alone
//	load -startup ./local                            starts a built cmd/local and times process start to first answer
//	load -requests 300000 > requests.tsv             writes signed bodies (signature TAB body per line) for
//	                                                 wrk with cmd/load/wrk.lua, a load generator that costs less CPU
//
// Every run is bounded in time and count and only ever dials 127.0.0.1.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/internal/localnet"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/store"
)

func main() {
	target := flag.String("url", "", "webhook URL to load (must be on 127.0.0.1)")
	conc := flag.Int("c", 32, "concurrent connections")
	dur := flag.Duration("d", 10*time.Second, "duration of the run (at most 60s)")
	max := flag.Int("n", 2_000_000, "at most this many requests")
	bare := flag.String("bare", "", "serve the bare signature-only handler on this loopback address")
	intake := flag.String("intake", "", "serve the webhook intake, with replies dropped, on this loopback address")
	logLevel := flag.String("log-level", "info", "with -intake: the lowest level logged (warn leaves out the per-webhook and per-message lines)")
	startup := flag.String("startup", "", "path of a built cmd/local to time from start to first answer")
	runs := flag.Int("runs", 20, "startup runs")
	requests := flag.Int("requests", 0, "write this many signed request bodies for wrk and exit")
	flag.Parse()
	secret := os.Getenv("WHATSAPP_APP_SECRET")
	if secret == "" {
		fail(errors.New("WHATSAPP_APP_SECRET is not set"))
	}
	var err error
	switch {
	case *bare != "":
		err = serveBare(*bare, secret)
	case *intake != "":
		err = serveIntake(*intake, secret, *logLevel)
	case *requests > 0:
		err = writeRequests(os.Stdout, secret, *requests)
	case *startup != "":
		err = timeStartup(*startup, *runs)
	case *target != "":
		err = load(*target, secret, *conc, min(*dur, time.Minute), *max)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}

// loopback refuses any address that is not on this machine.
func loopback(hostport string) error {
	if !localnet.HostPort(hostport) {
		return fmt.Errorf("%s is not host:port on a loopback address", hostport)
	}
	return nil
}

// body is a one-message text webhook whose wamid is unique per n.
func body(n int64) []byte {
	return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Load"},"wa_id":"1650555%04d"}],"messages":[{"from":"1650555%04d","id":"wamid.load.%d.%d","timestamp":"1764115200","type":"text","text":{"body":"hello number %d"}}]}}]}]}`,
		n%1000, n%1000, time.Now().UnixNano(), n, n)
}

func load(target, secret string, conc int, dur time.Duration, max int) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	if err := loopback(u.Host); err != nil {
		return err
	}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc},
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
		statuses = map[int]int{}
		errs     atomic.Int64
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(dur)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			seen := map[int]int{}
			for time.Now().Before(deadline) {
				n := next.Add(1)
				if n > int64(max) {
					break
				}
				b := body(n)
				req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(b, secret))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mine = append(mine, time.Since(t0))
				seen[resp.StatusCode]++
			}
			mu.Lock()
			lat = append(lat, mine...)
			for k, v := range seen {
				statuses[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	fmt.Printf("requests %d in %.2fs: %.0f/s; statuses %v; errors %d\n", len(lat), elapsed.Seconds(),
		float64(len(lat))/elapsed.Seconds(), statuses, errs.Load())
	fmt.Printf("latency p50 %v  p90 %v  p99 %v  max %v\n", pct(0.50), pct(0.90), pct(0.99), pct(1))
	return nil
}

// serveBare is the baseline: read the body, check the signature, answer 200.
func serveBare(addr, secret string) error {
	if err := loopback(addr); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "load: bare handler on http://%s/\n", addr)
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if graphapi.ValidateSignature(b, r.Header.Get(graphapi.SignatureHeader), secret) != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
}

// serveIntake serves the webhook as the service wires it with the embedded
// defaults, except that the queue's workers drop each job: the replies would
// otherwise compete with the intake for the same two cores.
func serveIntake(addr, secret, level string) error {
	if err := loopback(addr); err != nil {
		return err
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return err
	}
	logger := logging.New(os.Stdout, l)
	q := queue.NewInProcess(func(context.Context, queue.Job) error { return nil }, queue.InProcessOptions{Logger: logger})
	fmt.Fprintf(os.Stderr, "load: webhook intake on http://%s/\n", addr)
	tags, err := store.NewTags(secret)
	if err != nil {
		return err
	}
	return http.ListenAndServe(addr, handlers.New(handlers.Deps{
		AppSecret: secret, VerifyToken: "load", Store: store.NewMemory(store.Options{}), Queue: q, Logger: logger,
		IDs: logging.NewIDs(secret), Tags: tags,
	}))
}

// timeStartup starts bin (a built cmd/local) on a free port and times until
// its first answered request, runs times, and prints the median and worst.
func timeStartup(bin string, runs int) error {
	var times []time.Duration
	for range runs {
		d, err := startOnce(bin)
		if err != nil {
			return err
		}
		times = append(times, d)
	}
	slices.Sort(times)
	fmt.Printf("start to first answer over %d runs: median %v, min %v, max %v\n",
		runs, times[len(times)/2], times[0], times[len(times)-1])
	return nil
}

func startOnce(bin string) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	b := body(0)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	for ctx.Err() == nil {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
		req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(b, os.Getenv("WHATSAPP_APP_SECRET")))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
			return 0, fmt.Errorf("first answer was %d", resp.StatusCode)
		}
		time.Sleep(200 * time.Microsecond)
	}
	return 0, fmt.Errorf("no answer within 10s")
}

// writeRequests prints n signed webhook bodies, one per line, for wrk.lua.
func writeRequests(w io.Writer, secret string, n int) error {
	for i := range int64(n) {
		b := body(i)
		if _, err := fmt.Fprintf(w, "%s\t%s\n", graphapi.ComputeSignature(b, secret), b); err != nil {
			return err
		}
	}
	return nil
}
