// Command sign prints the X-Hub-Signature-256 header Meta would send for a
// webhook body, so a fixture can be posted to a local run with curl:
//
//	curl -H "$(go run ./cmd/sign testdata/webhooks/text.json)" \
//	  -H 'Content-Type: application/json' \
//	  --data-binary @testdata/webhooks/text.json http://127.0.0.1:8080/
//
// The secret comes from WHATSAPP_APP_SECRET, as for the service.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/patternai/whatsapp-node/graphapi"
)

func main() {
	if err := run(os.Args[1:], os.Getenv("WHATSAPP_APP_SECRET"), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sign:", err)
		os.Exit(2)
	}
}

func run(args []string, secret string, stdin io.Reader, stdout io.Writer) error {
	if secret == "" {
		return fmt.Errorf("WHATSAPP_APP_SECRET is not set")
	}
	var body []byte
	var err error
	switch len(args) {
	case 0:
		body, err = io.ReadAll(stdin)
	case 1:
		body, err = os.ReadFile(args[0])
	default:
		return fmt.Errorf("usage: sign [file] (reads standard input without a file)")
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: %s\n", graphapi.SignatureHeader, graphapi.ComputeSignature(body, secret))
	return err
}
