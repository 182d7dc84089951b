// Command local runs the function on this machine with the Functions
// Framework, on 127.0.0.1:$PORT (default 8080), reading the same environment
// as production. With only WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN and
// WHATSAPP_ACCESS_TOKEN set it runs on the embedded defaults: in-memory store,
// in-process queue and a local media folder.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	whatsappnode "github.com/patternai/whatsapp-node"
	"github.com/patternai/whatsapp-node/config"
)

func main() {
	if err := run(os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(1)
	}
}

func run(getenv func(string) string, stderr io.Writer) error {
	// Check the configuration before serving, so a missing secret stops the
	// program with the full list instead of failing every request.
	if _, err := config.Load(getenv); err != nil {
		return fmt.Errorf("cannot start:\n%w", err)
	}
	port := getenv("PORT")
	if port == "" {
		port = "8080"
	}
	os.Setenv("FUNCTION_TARGET", "Webhook")

	go drainOnSignal()
	fmt.Fprintf(stderr, "local: serving the Webhook function on http://127.0.0.1:%s/\n", port)
	return funcframework.StartHostPort("127.0.0.1", port)
}

// drainOnSignal lets queued replies finish (up to 25 s, below Cloud Run's
// 30 s grace period) when the process is told to stop.
func drainOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := whatsappnode.Shutdown(ctx); err != nil {
		log.Printf("local: drain incomplete: %v", err)
		os.Exit(1)
	}
	os.Exit(0)
}
