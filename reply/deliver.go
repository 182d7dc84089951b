package reply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/retry"
	"github.com/patternai/whatsapp-node/store"
)

// Parts of a reply, as recorded in the marker: "text.1", "text.2", ... for
// the messages of a text answer, "audio" for the voice note, "notice" for the
// reply to a message type the assistant does not read, and
// store.FallbackPart.
const (
	partText   = "text"
	partAudio  = "audio"
	partNotice = "notice"
)

// textPart names the i-th message of a text answer (from 1), and isTextPart
// tells such a name.
func textPart(i int) string       { return partText + "." + strconv.Itoa(i) }
func isTextPart(part string) bool { return strings.HasPrefix(part, partText+".") }

// errUnsettled is a part whose send had an unknown outcome and that no status
// confirmed before the attempt's budget ran out: it may have reached the
// user, so neither it nor anything in its place may be sent now.
var errUnsettled = errors.New("send outcome not settled")

// deliver sends the answer as the mode says, skipping parts an earlier
// attempt already sent: the text (when wantText) at once, the voice note
// (when note is set) once it is spoken. When the voice note certainly did not
// go out, the answer goes out as text instead: the user still gets the real
// answer.
func (a *attempt) deliver(ctx context.Context, st *staged, note *voiceNote, wantText bool) error {
	var (
		wg      sync.WaitGroup
		textErr error
	)
	if wantText {
		// In both mode the text leaves as soon as the answer exists, while
		// the voice note is still being synthesized.
		wg.Go(func() { textErr = a.sendText(ctx, st.Answer) })
	}
	var audioErr error
	if note != nil {
		audioErr = a.sendVoice(ctx, note)
	}
	wg.Wait()
	switch {
	case textErr != nil && a.isSent(partAudio):
		a.log.Error("text not sent; the voice note stands", "error", textErr)
		return nil
	case textErr != nil:
		return textErr
	case audioErr == nil:
		return nil
	case errors.Is(audioErr, errUnsettled), claimGone(audioErr):
		return audioErr
	case wantText:
		a.log.Error("voice note not sent; the text answer stands", "error", audioErr)
		return nil
	}
	a.log.Error("voice note not sent; answering with text", "error", audioErr)
	return a.sendText(ctx, st.Answer)
}

// sendText sends the answer as text, one part per message Graph takes (an
// answer over 4096 characters takes several: "text.1", "text.2", ...), each
// exactly once.
func (a *attempt) sendText(ctx context.Context, answer string) error {
	for i, chunk := range graphapi.SplitText(answer) {
		a.awaitStaged()
		if err := a.sendMessage(ctx, textPart(i+1), chunk); err != nil {
			return err
		}
	}
	return nil
}

// sendMessage sends body as the text of part, exactly once. A body over 4096
// characters (a long notice) leaves as the several messages SendText makes of
// it, all of them the one part.
func (a *attempt) sendMessage(ctx context.Context, part, body string) error {
	_, err := timed(a, "send_text", func() (struct{}, error) {
		return struct{}{}, a.sendPart(ctx, part, func(ctx context.Context, tag string) error {
			_, err := a.p.deps.Messenger.SendText(ctx, a.job.PhoneNumberID, a.job.Sender, body, graphapi.Tag(tag))
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("send %s: %w", part, err)
	}
	return nil
}

// sendVoice waits for the voice note to be spoken, uploads it and sends it.
func (a *attempt) sendVoice(ctx context.Context, note *voiceNote) error {
	audio, err := note.wait()
	if err != nil {
		return err
	}
	id, err := timed(a, "upload", func() (string, error) {
		return a.p.deps.Messenger.UploadMedia(ctx, a.job.PhoneNumberID, bytes.NewReader(audio), "audio/ogg", "reply.ogg")
	})
	if err != nil {
		return fmt.Errorf("upload voice note: %w", err)
	}
	a.awaitStaged()
	_, err = timed(a, "send_audio", func() (struct{}, error) {
		return struct{}{}, a.sendPart(ctx, partAudio, func(ctx context.Context, tag string) error {
			_, err := a.p.deps.Messenger.SendAudio(ctx, a.job.PhoneNumberID, a.job.Sender, id, true, graphapi.Tag(tag))
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("send voice note: %w", err)
	}
	return nil
}

// sendPart sends one part of the reply exactly once, as far as Meta lets us
// know. Its steps:
//
//   - A part already delivered is skipped.
//   - A part an earlier send left uncertain waits, renewing the claim, for a
//     status webhook to confirm it, up to ConfirmWindow after that send
//     started; confirmed, it is done, otherwise it is sent again.
//   - StartSend records the part before it leaves (and refuses when the
//     claim is lost, or when the part would put an answer beside the
//     fallback or the other way round).
//   - A send Meta answered is recorded as sent. One that certainly did not
//     reach Meta is forgotten and its error returned. One whose outcome is
//     unknown waits for its confirmation as above.
//
// send gets the tag to put in the message.
func (a *attempt) sendPart(ctx context.Context, part string, send func(ctx context.Context, tag string) error) error {
	for {
		if a.isSent(part) {
			return nil
		}
		a.mu.Lock()
		since, uncertain := a.marker.Uncertain(part)
		a.mu.Unlock()
		if uncertain {
			if err := a.awaitConfirmation(ctx, part, since); err != nil || a.isSent(part) {
				return err
			}
			a.log.Warn("no status confirmed an uncertain send; sending it again", "part", part)
		}

		store := a.p.deps.Store
		if err := store.StartSend(ctx, a.id, a.token, part); err != nil {
			return err
		}
		started := time.Now()
		err := send(ctx, a.p.deps.Tags.Seal(a.id, part))
		switch {
		case err == nil:
			a.markSent(ctx, part)
			return nil
		case graphapi.Unsent(err):
			// Meta did not take it: forget the start, so a fallback or a
			// later try may go. Should that write fail, the part stays
			// uncertain and a later attempt waits out the window: slower,
			// never doubled.
			if aerr := store.AbortSend(context.WithoutCancel(ctx), a.id, a.token, part); aerr != nil {
				a.log.Warn("failed send not recorded", "part", part, "error", aerr)
			}
			return err
		}
		a.log.Warn("send outcome unknown; waiting for a status to confirm it", "part", part, "error", err)
		a.mu.Lock()
		if a.marker.Sending == nil {
			a.marker.Sending = map[string]time.Time{}
		}
		a.marker.Sending[part] = started
		a.mu.Unlock()
	}
}

// awaitConfirmation polls the marker (through Renew, which also keeps the
// claim) until a status confirms part, the part is no longer uncertain, or
// ConfirmWindow has passed since its send started. It returns errUnsettled
// when ctx ends first.
func (a *attempt) awaitConfirmation(ctx context.Context, part string, since time.Time) error {
	// Every poll is a write to the marker: Firestore takes about one a
	// second per document.
	poll := min(2*time.Second, a.p.opts.ConfirmWindow/10)
	for {
		m, err := a.renew(ctx)
		switch {
		case claimGone(err):
			return err
		case err == nil && (a.isSent(part) || !isUncertain(m, part)):
			return nil
		}
		left := time.Until(since.Add(a.p.opts.ConfirmWindow))
		if left <= 0 {
			return nil
		}
		if retry.Sleep(ctx, min(poll, left)) != nil {
			return fmt.Errorf("%s: %w", part, errors.Join(errUnsettled, context.Cause(ctx)))
		}
	}
}

func isUncertain(m store.Marker, part string) bool {
	_, ok := m.Uncertain(part)
	return ok
}

// markSent records a delivered part, retrying for a while on a context of
// its own: the part did go out, and a record lost here would leave it
// uncertain, to be sent again unless a status confirms it. A failure after
// the retries is logged, not returned, since returning would send the
// fallback.
func (a *attempt) markSent(ctx context.Context, part string) {
	a.mu.Lock()
	a.sent[part] = true
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.p.opts.reserve())
	defer cancel()
	_, err := retry.Do(ctx, retry.Policy{Initial: 100 * time.Millisecond, Attempts: 6,
		Retryable: func(error) bool { return true }}, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, a.p.deps.Store.MarkSent(ctx, a.id, part)
	})
	if err != nil {
		a.log.Error("sent part not recorded", "part", part, "error", err)
	}
}
