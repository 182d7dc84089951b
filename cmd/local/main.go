// Command local runs the function on this machine with the Functions
// Framework, on 127.0.0.1:$PORT (default 8080), reading the same environment
// as production. With only WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN and
// WHATSAPP_ACCESS_TOKEN set it runs on the embedded defaults: in-memory
// store, in-process queue and a local media folder.
//
// By default it also starts a sandbox: local stand-ins for Meta's Graph API,
// Gemini and Google Speech, so a signed webhook posted to it is answered end
// to end with no account anywhere; replies are printed and voice notes saved
// under .media/sandbox-replies. Run it with -sandbox=false to use the real
// services the environment names.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	// The function registers itself when imported; Start builds it and
	// drains its queue on SIGINT and SIGTERM.
	whatsappnode "github.com/patternai/whatsapp-node"
	"github.com/patternai/whatsapp-node/config"
)

func main() {
	useSandbox := flag.Bool("sandbox", true, "answer with local stand-ins for Meta, Gemini and Google Speech")
	flag.Parse()
	if err := run(*useSandbox, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(1)
	}
}

func run(useSandbox bool, stderr io.Writer) error {
	// Check the configuration before serving, so a missing secret stops the
	// program with the full list instead of failing every request.
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return fmt.Errorf("cannot start:\n%w", err)
	}
	if useSandbox {
		sb, env, err := startSandbox(stderr, filepath.Join(cfg.MediaDir, "sandbox-replies"))
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		defer sb.close()
		env["GOOGLE_CLOUD_PROJECT"] = cmp.Or(cfg.Project, "sandbox")
		// The function reads its settings from the environment, as in
		// production, so the sandbox speaks to it through the environment too.
		for k, v := range env {
			os.Setenv(k, v)
		}
		fmt.Fprintf(stderr, "local: sandbox on: Graph API %s, Gemini %s, Speech %s\n",
			env["GRAPH_API_BASE_URL"], env["GOOGLE_VERTEX_BASE_URL"], env["SPEECH_ENDPOINT"])
	}
	// Build the service and every client before serving, so that a bad
	// setting stops the program with the full list instead of 500s.
	if err := whatsappnode.Start(context.Background(), os.Getenv, os.Stdout); err != nil {
		return fmt.Errorf("cannot start:\n%w", err)
	}
	port := cmp.Or(os.Getenv("PORT"), "8080")
	os.Setenv("FUNCTION_TARGET", "Webhook")

	fmt.Fprintf(stderr, "local: serving the Webhook function on http://127.0.0.1:%s/\n", port)
	return funcframework.StartHostPort("127.0.0.1", port)
}
