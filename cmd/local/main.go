// Command local runs the service on this machine, on 127.0.0.1:$PORT
// (default 8080), from the same environment as production, with the
// embedded defaults: in-memory store, in-process queue, local media folder.
//
// It starts a sandbox for the outside services the environment does not
// configure: stand-ins for Meta's Graph API, Gemini and Google Speech (the
// fakes the tests use), so that a webhook is answered end to end with no
// account anywhere, and real Google services can be switched on one at a
// time. -sandbox names the stand-ins instead. With Meta's stand-in, the
// WhatsApp secrets default to dev values and the replies are printed, their
// voice notes saved under $MEDIA_DIR/sandbox, apart from a real run's files.
//
// With -chat it also reads lines from standard input and sends each to the
// service as a signed webhook from a sandbox user, exactly as Meta would, then
// prints the answer; see chat.go.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/service"
)

// drainTimeout bounds the wait for queued replies when the program stops.
const drainTimeout = time.Minute

func main() {
	// A first `go run` builds for a while; this line says the wait is over.
	fmt.Fprintln(os.Stderr, "local: built, starting")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first Ctrl-C waits for queued answers; a second one ends the
		// program at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends or, with -chat, until standard input does. The
// sandbox's settings reach the service through getenv, never os.Setenv.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	// The sandbox, the chat and the logger write from their own goroutines.
	stdout, stderr = &lockedWriter{w: stdout}, &lockedWriter{w: stderr}
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	chat := fs.Bool("chat", false, "read messages from standard input, send each as a sandbox user, print the answers")
	which := fs.String("sandbox", "auto", sandboxUsage)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: local [-chat] [-sandbox=auto|all|none|meta,gemini,speech]\n\n"+
			"Serves the service on 127.0.0.1:$PORT (default 8080) with local stand-ins for the services\n"+
			"the environment does not configure. See README.md.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	s, err := chooseStandIns(*which, *chat, getenv)
	if err != nil {
		return err
	}
	l, err := start(ctx, s, *chat, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	if *chat {
		err = l.chat(ctx, stdin, stdout, stderr)
	} else {
		<-ctx.Done()
	}
	return errors.Join(err, l.close())
}

// local is a running service with its sandbox.
type local struct {
	cfg    config.Config
	url    string // the webhook's URL
	svc    *service.Service
	server *http.Server
	sb     *sandbox // nil when every service is real
	// handled receives the wamid of each message the service has finished
	// with, for the chat; nil without it.
	handled chan string
}

// start starts the stand-ins s names, then the service on them, and prints
// which services are real.
func start(ctx context.Context, s standIns, chat bool, getenv func(string) string, stdout, stderr io.Writer) (_ *local, err error) {
	l := &local{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if s.any() {
		if l.sb, err = startSandbox(s, stdout); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		overlay, notes := l.sb.env(getenv)
		if s.Meta && getenv("REPLY_MODE") == "" {
			// The stand-in WhatsApp prints each answer as text too: in the
			// default mode, audio, the text never reaches WhatsApp.
			overlay["REPLY_MODE"] = "both"
			notes = append(notes, "REPLY_MODE is not set: the sandbox asks for both, the text and then the voice note")
		}
		getenv = overlaid(overlay, getenv)
		for _, line := range append(l.sb.describe(), notes...) {
			fmt.Fprintln(stderr, "local:", line)
		}
	}
	// Configuration is checked before serving, so a missing secret stops
	// the program with the full list instead of failing every request.
	if l.cfg, err = config.Load(getenv); err != nil {
		return nil, fmt.Errorf("cannot start:\n%w", err)
	}
	if l.sb != nil {
		// A sandbox run keeps its staged files apart, so that a real run
		// never reuses a stand-in's answer for the same message id.
		l.cfg.MediaDir = filepath.Join(l.cfg.MediaDir, "sandbox")
		l.sb.replyDir = filepath.Join(l.cfg.MediaDir, "voice-notes")
	}
	level := l.cfg.LogLevel
	if chat {
		// Info lines would bury the conversation; problems still show.
		level = max(level, slog.LevelWarn)
	}
	// The clients outlive ctx: after Ctrl-C, queued replies still finish.
	if l.svc, err = service.New(context.WithoutCancel(ctx), l.cfg, logging.New(stderr, level)); err != nil {
		return nil, fmt.Errorf("cannot start: %w", err)
	}
	if chat {
		l.handled = make(chan string, 64)
		l.svc.OnHandled(func(wamid string, err error) {
			if err == nil {
				select {
				case l.handled <- wamid:
				default: // a message the chat did not send, and nobody reads
				}
			}
		})
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", cmp.Or(getenv("PORT"), "8080")))
	if err != nil {
		return nil, fmt.Errorf("%w (PORT chooses another port; PORT=0 a free one)", err)
	}
	l.url = "http://" + ln.Addr().String() + "/"
	l.server = &http.Server{Handler: explainRefusals(l.svc, stderr), ReadHeaderTimeout: 10 * time.Second}
	go l.server.Serve(ln) // returns when close shuts the server down
	fmt.Fprintf(stderr, "local: serving the webhook on %s\n", l.url)
	return l, nil
}

// close stops taking requests, lets the queued replies finish, then stops
// the stand-ins.
func (l *local) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	var errs []error
	if l.server != nil {
		errs = append(errs, l.server.Shutdown(ctx))
	}
	if l.svc != nil {
		if err := l.svc.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("queued replies not finished: %w", err))
		}
	}
	if l.sb != nil {
		l.sb.close()
	}
	return errors.Join(errs...)
}

// refusalHint says what to check when a webhook's signature is refused. The
// service answers only 401, as Meta should see it; a person trying it locally
// needs more. It never shows the expected signature.
const refusalHint = "local: a webhook was refused (401): its " + graphapi.SignatureHeader + " is missing or does not match " +
	"its body. Sign the file with this run's WHATSAPP_APP_SECRET (go run ./cmd/sign FILE) and post it byte " +
	"for byte: curl --data-binary @FILE (curl -d drops line breaks)."

// explainRefusals prints refusalHint each time h answers a webhook 401.
func explainRefusals(h http.Handler, out io.Writer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized && r.Method == http.MethodPost {
			fmt.Fprintln(out, refusalHint)
		}
	})
}

// statusRecorder keeps the status a handler answers with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// overlaid returns a getenv that answers from overlay first.
func overlaid(overlay map[string]string, getenv func(string) string) func(string) string {
	return func(name string) string {
		if v, ok := overlay[name]; ok {
			return v
		}
		return getenv(name)
	}
}

// lockedWriter serializes writes, so that lines from several goroutines
// never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
