package graphapi

import (
	"fmt"
	"slices"

	// goccy/go-json decodes the same types as encoding/json about four
	// times faster; parsing is the largest share of a webhook's cost.
	json "github.com/goccy/go-json"
)

// Payload is a webhook notification body as Meta posts it.
//
// Its lists hold pointers, never nil (ParsePayload drops null elements): the
// decoder sizes a list's first buffer for four elements, and a webhook
// usually carries one of each, so a list of values cost the intake
// allocations several times the size of the body.
type Payload struct {
	Object string   `json:"object"`
	Entry  []*Entry `json:"entry"`
}

// Entry is one WhatsApp Business Account's share of a notification.
type Entry struct {
	ID      string    `json:"id"`
	Changes []*Change `json:"changes"`
}

// Change is one update for a field. Only the "messages" field carries user
// messages and statuses; the others (templates, account updates, calls, echoes)
// are accepted and ignored.
type Change struct {
	Field string `json:"field"`
	Value Value  `json:"value"`
}

// Value is the body of a "messages" change.
type Value struct {
	MessagingProduct string     `json:"messaging_product"`
	Metadata         Metadata   `json:"metadata"`
	Contacts         []*Contact `json:"contacts,omitempty"`
	Messages         []*Message `json:"messages,omitempty"`
	Statuses         []*Status  `json:"statuses,omitempty"`
	Errors           []Error    `json:"errors,omitempty"`
}

// Metadata names the business number that received the update.
type Metadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

// Contact is the sender's profile. WaID may be empty for users who chose a
// username; UserID (the business-scoped user id) is then the only key.
type Contact struct {
	Profile      Profile `json:"profile"`
	WaID         string  `json:"wa_id,omitempty"`
	UserID       string  `json:"user_id,omitempty"`
	ParentUserID string  `json:"parent_user_id,omitempty"`
}

// Profile holds what the user shows of themselves.
type Profile struct {
	Name     string `json:"name,omitempty"`
	Username string `json:"username,omitempty"`
}

// Message is one inbound user message. Exactly one of the typed fields is set,
// matching Type; unknown types keep only the common fields.
type Message struct {
	From       string `json:"from"`
	FromUserID string `json:"from_user_id,omitempty"`
	ID         string `json:"id"`
	Timestamp  string `json:"timestamp"`
	Type       string `json:"type"`

	Context     *MessageContext `json:"context,omitempty"`
	Text        *Text           `json:"text,omitempty"`
	Audio       *Media          `json:"audio,omitempty"`
	Image       *Media          `json:"image,omitempty"`
	Video       *Media          `json:"video,omitempty"`
	Document    *Media          `json:"document,omitempty"`
	Sticker     *Media          `json:"sticker,omitempty"`
	Location    *Location       `json:"location,omitempty"`
	Contacts    []SharedContact `json:"contacts,omitempty"`
	Interactive *Interactive    `json:"interactive,omitempty"`
	Button      *Button         `json:"button,omitempty"`
	Reaction    *Reaction       `json:"reaction,omitempty"`
	Order       *Order          `json:"order,omitempty"`
	System      *System         `json:"system,omitempty"`
	Errors      []Error         `json:"errors,omitempty"`
}

// Message types the parser knows by name.
const (
	TypeText        = "text"
	TypeAudio       = "audio"
	TypeImage       = "image"
	TypeVideo       = "video"
	TypeDocument    = "document"
	TypeSticker     = "sticker"
	TypeLocation    = "location"
	TypeContacts    = "contacts"
	TypeInteractive = "interactive"
	TypeButton      = "button"
	TypeReaction    = "reaction"
	TypeOrder       = "order"
	TypeSystem      = "system"
	TypeUnsupported = "unsupported"
)

// MessageContext is set when the message replies to or forwards another one.
type MessageContext struct {
	From                string `json:"from,omitempty"`
	ID                  string `json:"id,omitempty"`
	Forwarded           bool   `json:"forwarded,omitempty"`
	FrequentlyForwarded bool   `json:"frequently_forwarded,omitempty"`
}

// Text is a text message's content.
type Text struct {
	Body string `json:"body"`
}

// Media describes an audio, image, video, document or sticker attachment.
// Voice is true for voice notes recorded in WhatsApp.
type Media struct {
	ID       string `json:"id"`
	MIMEType string `json:"mime_type,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
	Voice    bool   `json:"voice,omitempty"`
	Animated bool   `json:"animated,omitempty"`
	URL      string `json:"url,omitempty"`
}

// Location is a shared place.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name,omitempty"`
	Address   string  `json:"address,omitempty"`
	URL       string  `json:"url,omitempty"`
}

// SharedContact is a contact card the user sent.
type SharedContact struct {
	Name struct {
		FormattedName string `json:"formatted_name,omitempty"`
		FirstName     string `json:"first_name,omitempty"`
		LastName      string `json:"last_name,omitempty"`
	} `json:"name"`
	Phones []struct {
		Phone string `json:"phone,omitempty"`
		WaID  string `json:"wa_id,omitempty"`
		Type  string `json:"type,omitempty"`
	} `json:"phones,omitempty"`
}

// Interactive is the user's answer to an interactive message.
type Interactive struct {
	Type        string    `json:"type"`
	ButtonReply *Choice   `json:"button_reply,omitempty"`
	ListReply   *Choice   `json:"list_reply,omitempty"`
	NFMReply    *NFMReply `json:"nfm_reply,omitempty"`
}

// Choice is a tapped reply button or list row.
type Choice struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// NFMReply is a completed WhatsApp Flow.
type NFMReply struct {
	Name         string `json:"name,omitempty"`
	Body         string `json:"body,omitempty"`
	ResponseJSON string `json:"response_json,omitempty"`
}

// Button is a tapped quick-reply button of a template.
type Button struct {
	Payload string `json:"payload,omitempty"`
	Text    string `json:"text"`
}

// Reaction is an emoji reaction; an empty Emoji means it was removed.
type Reaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji,omitempty"`
}

// Order is a cart sent from a catalog.
type Order struct {
	CatalogID    string `json:"catalog_id"`
	Text         string `json:"text,omitempty"`
	ProductItems []struct {
		ProductRetailerID string  `json:"product_retailer_id"`
		Quantity          int     `json:"quantity"`
		ItemPrice         float64 `json:"item_price"`
		Currency          string  `json:"currency"`
	} `json:"product_items,omitempty"`
}

// System is a system notice, such as a changed number.
type System struct {
	Body string `json:"body,omitempty"`
	Type string `json:"type,omitempty"`
}

// Status reports what happened to a message we sent.
type Status struct {
	ID          string  `json:"id"`
	Status      string  `json:"status"`
	Timestamp   string  `json:"timestamp"`
	RecipientID string  `json:"recipient_id"`
	Errors      []Error `json:"errors,omitempty"`
	// CallbackData is the biz_opaque_callback_data the message was sent
	// with (see Tag), echoed by Meta.
	CallbackData string `json:"biz_opaque_callback_data,omitempty"`
}

// Error is an error object inside a webhook (on a message, a status or a change).
type Error struct {
	Code      int    `json:"code"`
	Title     string `json:"title,omitempty"`
	Message   string `json:"message,omitempty"`
	ErrorData struct {
		Details string `json:"details,omitempty"`
	} `json:"error_data,omitempty"`
}

// ParsePayload decodes a webhook body. It fails only on malformed JSON or a
// body that is not a JSON object; unknown fields and types are kept out
// silently so that new Meta features never fail a delivery.
//
// The payload's strings refer to body instead of copying it: the intake
// parses every webhook, and the copies were half of its allocations. So body
// must not change while the payload is in use, and a string kept keeps all
// of body alive.
func ParsePayload(body []byte) (*Payload, error) {
	var p Payload
	if err := json.UnmarshalWithOption(body, &p, json.DecodeNoCopyString()); err != nil {
		return nil, fmt.Errorf("parse webhook payload: %w", err)
	}
	p.dropNulls()
	return &p, nil
}

// dropNulls removes the null elements of p's lists, so that no caller meets
// a nil.
func (p *Payload) dropNulls() {
	p.Entry = slices.DeleteFunc(p.Entry, isNil)
	for _, e := range p.Entry {
		e.Changes = slices.DeleteFunc(e.Changes, isNil)
		for _, c := range e.Changes {
			v := &c.Value
			v.Contacts = slices.DeleteFunc(v.Contacts, isNil)
			v.Messages = slices.DeleteFunc(v.Messages, isNil)
			v.Statuses = slices.DeleteFunc(v.Statuses, isNil)
		}
	}
}

func isNil[T any](p *T) bool { return p == nil }

// SenderKey is the key a user is known by: the phone number (wa_id) when
// present, else the business-scoped user id.
func (v *Value) SenderKey(m *Message) string {
	if m.From != "" {
		return m.From
	}
	if m.FromUserID != "" {
		return m.FromUserID
	}
	for _, c := range v.Contacts {
		if c.UserID != "" && (len(v.Contacts) == 1 || c.WaID == "") {
			return c.UserID
		}
	}
	return ""
}

// ProfileName is the sender's display name, if Meta sent one.
func (v *Value) ProfileName(m *Message) string {
	for _, c := range v.Contacts {
		if len(v.Contacts) == 1 || (m.From != "" && c.WaID == m.From) {
			return c.Profile.Name
		}
	}
	return ""
}
