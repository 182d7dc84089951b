package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/speech"
)

// The sandbox user the chat speaks for, and the business number it writes
// to. 555-01xx numbers are reserved for fiction.
const (
	chatUser          = "15555550100"
	chatUserName      = "Sandbox user"
	chatPhoneNumberID = "100000000000001"
	chatDisplayNumber = "15555550199"
)

// answerTimeout bounds the wait for one answer; real services retry within
// it.
const answerTimeout = 3 * time.Minute

const chatHelp = `Type a message and press Enter. Commands:
  /voice FILE.ogg         send a voice note (Ogg/Opus, as WhatsApp records them)
  /image FILE [caption]   send a photo (JPEG or PNG)
  /reset                  forget the conversation so far
  /help                   this text
End with Ctrl-D (or the end of piped input); queued answers are awaited.`

// chat reads lines from in and sends each to the service as Meta would, then
// waits for the answer, which the sandbox prints. It returns at the end of
// in, or when ctx ends.
func (l *local) chat(ctx context.Context, in io.Reader, out, status io.Writer) error {
	fmt.Fprintln(status, chatHelp)
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
		close(lines)
	}()
	interactive := isTerminal(in)
	for {
		if interactive {
			fmt.Fprint(status, "> ")
		}
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return nil // Ctrl-C: close still waits for queued answers
		case line, ok = <-lines:
		}
		if !ok {
			return <-readErr
		}
		msg, err := l.chatMessage(strings.TrimSpace(line), out)
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			continue
		}
		if msg == nil {
			continue
		}
		if err := l.post(ctx, msg); err != nil {
			fmt.Fprintln(out, "error:", err)
			continue
		}
		l.await(ctx, msg.ID, out)
	}
}

// isTerminal reports whether in is a terminal, where a prompt helps; piped
// input gets none.
func isTerminal(in io.Reader) bool {
	f, ok := in.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// chatMessage turns a line into the message to send, or runs its command and
// returns nil.
func (l *local) chatMessage(line string, out io.Writer) (*graphapi.Message, error) {
	command, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch {
	case line == "":
		return nil, nil
	case !strings.HasPrefix(line, "/"):
		return &graphapi.Message{Type: graphapi.TypeText, Text: &graphapi.Text{Body: line}}, nil
	case command == "/help":
		fmt.Fprintln(out, chatHelp)
		return nil, nil
	case command == "/reset":
		// Sent as WhatsApp users send it: the service's reset word, which
		// it answers with its notice.
		return &graphapi.Message{Type: graphapi.TypeText, Text: &graphapi.Text{Body: line}}, nil
	case command == "/voice" && arg != "":
		data, err := os.ReadFile(arg)
		if err != nil {
			return nil, err
		}
		if _, err := speech.OggDuration(data); err != nil {
			return nil, fmt.Errorf("%s is not an Ogg/Opus voice note (%v); WhatsApp records voice notes as Ogg/Opus, which opusenc makes", arg, err)
		}
		return &graphapi.Message{Type: graphapi.TypeAudio, Audio: l.upload(data, "audio/ogg; codecs=opus", true)}, nil
	case command == "/image" && arg != "":
		file, caption, _ := strings.Cut(arg, " ")
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		mimeType := http.DetectContentType(data)
		if mimeType != "image/jpeg" && mimeType != "image/png" {
			return nil, fmt.Errorf("%s is %s, not a JPEG or PNG photo", file, mimeType)
		}
		m := l.upload(data, mimeType, false)
		m.Caption = strings.TrimSpace(caption)
		return &graphapi.Message{Type: graphapi.TypeImage, Image: m}, nil
	default:
		return nil, fmt.Errorf("%q is not a command I know; /help lists them", line)
	}
}

// upload gives data to the Meta stand-in, as WhatsApp does with what a user
// sends, and returns the webhook's description of it.
func (l *local) upload(data []byte, mimeType string, voice bool) *graphapi.Media {
	sum := sha256.Sum256(data)
	return &graphapi.Media{
		ID:       l.sb.graph.AddMedia(data, mimeType),
		MIMEType: mimeType,
		SHA256:   base64.StdEncoding.EncodeToString(sum[:]),
		Voice:    voice,
	}
}

// post sends m from the sandbox user as Meta would: a webhook body with a
// fresh wamid, signed with the app secret, posted to the service.
func (l *local) post(ctx context.Context, m *graphapi.Message) error {
	m.From = chatUser
	m.ID = newWamid()
	m.Timestamp = strconv.FormatInt(time.Now().Unix(), 10)
	body, err := json.Marshal(graphapi.Payload{
		Object: "whatsapp_business_account",
		Entry: []*graphapi.Entry{{ID: chatPhoneNumberID, Changes: []*graphapi.Change{{
			Field: "messages",
			Value: graphapi.Value{
				MessagingProduct: "whatsapp",
				Metadata:         graphapi.Metadata{DisplayPhoneNumber: chatDisplayNumber, PhoneNumberID: chatPhoneNumberID},
				Contacts:         []*graphapi.Contact{{Profile: graphapi.Profile{Name: chatUserName}, WaID: chatUser}},
				Messages:         []*graphapi.Message{m},
			},
		}}}},
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(body, l.cfg.AppSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("the webhook answered %s: %s", resp.Status, bytes.TrimSpace(text))
	}
	return nil
}

// await waits until the service has finished with the message just sent:
// the sandbox has printed each part of the answer, and the conversation is
// stored.
func (l *local) await(ctx context.Context, wamid string, out io.Writer) {
	timer := time.NewTimer(answerTimeout)
	defer timer.Stop()
	for {
		select {
		case id := <-l.handled:
			if id == wamid {
				return
			}
		case <-timer.C:
			fmt.Fprintf(out, "(no answer after %v; it is printed if it comes)\n", answerTimeout)
			return
		case <-ctx.Done():
			return
		}
	}
}

// newWamid returns a message id shaped like Meta's, unique across runs so
// that a persistent store never takes a new message for a duplicate.
func newWamid() string {
	b := make([]byte, 24)
	rand.Read(b) // never fails
	return "wamid." + base64.StdEncoding.EncodeToString(b)
}
