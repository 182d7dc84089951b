// Command sign prints the X-Hub-Signature-256 header Meta would send for a
// webhook body, so that a fixture can be posted to a local run with curl:
//
//	curl -H "$(go run ./cmd/sign testdata/webhooks/text.json)" \
//	  --data-binary @testdata/webhooks/text.json http://127.0.0.1:8080/
//
// With -check it says instead whether a signature matches the body, and what
// to look at when it does not. The secret comes from WHATSAPP_APP_SECRET, as
// for the service.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/patternai/whatsapp-node/graphapi"
)

const usage = `usage: sign [-check SIGNATURE] FILE
       sign [-check SIGNATURE] -        (reads the body from standard input)

Prints the %s header Meta sends with the webhook body in FILE,
signed with WHATSAPP_APP_SECRET (go run ./cmd/local uses %q when it is not set).
With -check, says whether SIGNATURE ("sha256=...", or the whole header line)
matches that body instead.

`

// mismatchHint says what to look at when a signature does not match. It
// never shows the expected value: that would sign any body for whoever can
// run this next to the secret, and it would not say which of these is wrong.
const mismatchHint = `the signature does not match this body signed with WHATSAPP_APP_SECRET. Check:
  - the secret: the service and the signer must use the same WHATSAPP_APP_SECRET (Meta's App Secret);
  - the bytes: post the file byte for byte, with curl --data-binary @FILE (curl -d drops line breaks);
  - the file: the signature must be made for the very file that is posted.`

func main() {
	err := run(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "sign:", err)
		os.Exit(2)
	}
}

func run(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.String("check", "", "the signature to check against the body, instead of printing one")
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, graphapi.SignatureHeader, "dev-secret")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give one file with the webhook body, or - to read it from standard input")
	}
	secret := getenv("WHATSAPP_APP_SECRET")
	if secret == "" {
		return errors.New("WHATSAPP_APP_SECRET is not set: export the secret the service uses")
	}
	var body []byte
	var err error
	if name := fs.Arg(0); name == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(name)
	}
	if err != nil {
		return err
	}
	if *check == "" {
		_, err = fmt.Fprintf(stdout, "%s: %s\n", graphapi.SignatureHeader, graphapi.ComputeSignature(body, secret))
		return err
	}
	signature := strings.TrimSpace(*check)
	if name, value, ok := strings.Cut(signature, ":"); ok && strings.EqualFold(strings.TrimSpace(name), graphapi.SignatureHeader) {
		signature = strings.TrimSpace(value)
	}
	if !strings.HasPrefix(signature, "sha256=") {
		return fmt.Errorf("-check %q: a signature looks like sha256=<64 hex digits>", *check)
	}
	if err := graphapi.ValidateSignature(body, signature, secret); err != nil {
		return errors.New(mismatchHint)
	}
	_, err = fmt.Fprintln(stdout, "the signature matches")
	return err
}
