package reply

import (
	"strings"

	"github.com/patternai/whatsapp-node/graphapi"
)

// kind is how the pipeline treats a message type.
type kind int

const (
	// ignore gets no reply: reactions, stickers, system notices, and
	// types this service does not know (logged and skipped).
	ignore kind = iota
	// text is answered from its text: text messages and taps on buttons
	// and lists.
	text
	// voice is transcribed, then answered.
	voice
	// attachment is answered by the model looking at the file itself, with
	// its caption: images and PDF documents.
	attachment
	// unsupported gets a short reply saying what the assistant understands:
	// locations, contacts, videos, orders and other documents.
	unsupported
)

// pdf is the one document type the model reads.
const pdf = "application/pdf"

// classify decides what to do with m, and returns its text when it has one.
func classify(m graphapi.Message) (kind, string) {
	switch m.Type {
	case graphapi.TypeText:
		if m.Text != nil && strings.TrimSpace(m.Text.Body) != "" {
			return text, m.Text.Body
		}
	case graphapi.TypeInteractive:
		if c := choice(m.Interactive); c != "" {
			return text, c
		}
	case graphapi.TypeButton:
		if m.Button != nil && m.Button.Text != "" {
			return text, m.Button.Text
		}
	case graphapi.TypeAudio:
		if m.Audio != nil && m.Audio.ID != "" {
			return voice, ""
		}
	case graphapi.TypeImage:
		if m.Image != nil && m.Image.ID != "" {
			return attachment, m.Image.Caption
		}
	case graphapi.TypeDocument:
		if m.Document != nil && m.Document.ID != "" && mimeBase(m.Document.MIMEType) == pdf {
			return attachment, m.Document.Caption
		}
		return unsupported, ""
	case graphapi.TypeLocation, graphapi.TypeContacts, graphapi.TypeVideo, graphapi.TypeOrder, graphapi.TypeUnsupported:
		return unsupported, ""
	}
	return ignore, ""
}

// choice is the text of a tapped reply button or list row.
func choice(i *graphapi.Interactive) string {
	switch {
	case i == nil:
		return ""
	case i.ButtonReply != nil:
		return i.ButtonReply.Title
	case i.ListReply != nil:
		return strings.TrimSpace(i.ListReply.Title + " " + i.ListReply.Description)
	}
	return ""
}

// mediaOf returns the attachment of an audio, image or document message.
func mediaOf(m graphapi.Message) *graphapi.Media {
	switch {
	case m.Audio != nil:
		return m.Audio
	case m.Image != nil:
		return m.Image
	case m.Document != nil:
		return m.Document
	}
	return nil
}

func mimeBase(mime string) string {
	base, _, _ := strings.Cut(mime, ";")
	return strings.TrimSpace(strings.ToLower(base))
}
