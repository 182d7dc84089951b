package reply

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/patternai/whatsapp-node/media"
)

// staged is what an attempt keeps of its answer, so a retry speaks the same
// words in the same language without asking the model again.
type staged struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
	// Language is the whole answer's (see speech.AnswerLanguage): the hint
	// with which SpeakStream chooses a retry's voice from its first piece.
	Language string `json:"language,omitempty"`
}

func answerName(id string) string  { return "replies/" + objectName(id) + ".json" }
func audioName(id string) string   { return "replies/" + objectName(id) + ".ogg" }
func inboundName(id string) string { return "inbound/" + objectName(id) + ".ogg" }

// objectName turns a wamid (base64 after "wamid.") into the URL-safe base64
// alphabet, so staged objects carry no characters that need escaping in a
// gs:// URI. Dropping the padding keeps names distinct: it follows from the
// length.
var objectName = strings.NewReplacer("+", "-", "/", "_", "=", "").Replace

// stagedAnswer returns the answer an earlier attempt staged, or nil. Cloud
// Storage's client retries its reads itself, so nothing here does.
func (a *attempt) stagedAnswer(ctx context.Context) (*staged, error) {
	if !a.resuming {
		return nil, nil
	}
	b, err := a.p.deps.Stager.Get(ctx, answerName(a.id))
	if errors.Is(err, media.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, errors.Join(errors.New("read staged answer"), err)
	}
	var st staged
	if err := json.Unmarshal(b, &st); err != nil || st.Answer == "" {
		a.log.Warn("staged answer unreadable; answering again", "error", err)
		return nil, nil
	}
	return &st, nil
}

// stageAnswer keeps the answer for a retry, beside the reply rather than in
// front of it: only the answer's parts after its first wait for it (see
// awaitStaged).
func (a *attempt) stageAnswer(ctx context.Context, st *staged) {
	b, _ := json.Marshal(st)
	a.staging.Go(func() {
		defer close(a.answerStaged)
		if err := a.p.deps.Stager.Put(ctx, answerName(a.id), b, "application/json"); err != nil {
			// A retry then asks the model again if no part went out, and
			// otherwise lets the parts that went out stand (see
			// unknownAnswerOut).
			a.log.Warn("answer not staged", "error", err)
		}
	})
}

// awaitStaged holds a part of the answer back until the answer is staged,
// unless it is the first part to leave: that one goes beside the staging
// write, which keeps the write off the reply of one part, the common case.
// A part after it waits, so that a retry after a crash between the two finds
// the answer staged and sends the rest of that same answer, not of a new
// one. The write ends with ctx, so the wait does too.
//
// A staging write that failed lets the later parts go all the same. The
// answer is whole in this attempt; holding its parts back would cut it short
// for certain, to spare it a cut that only a crash in the middle of its
// delivery could make, and even then a retry sends nothing of another answer
// (see unknownAnswerOut).
func (a *attempt) awaitStaged() {
	if first := a.leading.CompareAndSwap(false, true); !first {
		<-a.answerStaged
	}
}

// stagedAudio returns the voice note an earlier attempt staged, or nil.
func (a *attempt) stagedAudio(ctx context.Context) []byte {
	if !a.resuming {
		return nil
	}
	audio, err := a.p.deps.Stager.Get(ctx, audioName(a.id))
	if err == nil {
		a.log.Info("reusing staged voice note")
		return audio
	}
	if !errors.Is(err, media.ErrNotFound) {
		a.log.Warn("staged voice note unreadable; synthesizing again", "error", err)
	}
	return nil
}

// stageAudio keeps the voice note for a retry, beside the reply.
func (a *attempt) stageAudio(ctx context.Context, audio []byte) {
	a.staging.Go(func() {
		if err := a.p.deps.Stager.Put(ctx, audioName(a.id), audio, "audio/ogg"); err != nil {
			a.log.Warn("voice note not staged", "error", err)
		}
	})
}
