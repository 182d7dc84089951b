package graphapi

import (
	"context"
	"errors"
	"fmt"
)

// SendOption adjusts an outgoing message.
type SendOption func(*sendOptions)

type sendOptions struct {
	replyTo string
	tag     string
}

// Tag sets the message's biz_opaque_callback_data (at most 512 characters):
// Meta does not read it, and echoes it in the message's status webhooks, so
// the sender can recognise them. A text split into several messages carries
// it on each.
func Tag(tag string) SendOption {
	return func(o *sendOptions) { o.tag = tag }
}

// ReplyTo makes the message quote the user's message wamid, as a reply does in
// the app. A text split into several messages quotes it on the first only.
func ReplyTo(wamid string) SendOption {
	return func(o *sendOptions) { o.replyTo = wamid }
}

// outgoing is the body of POST /{phone_number_id}/messages for a send.
type outgoing struct {
	MessagingProduct string        `json:"messaging_product"`
	RecipientType    string        `json:"recipient_type"`
	To               string        `json:"to,omitempty"`
	Recipient        string        `json:"recipient,omitempty"`
	Context          *replyContext `json:"context,omitempty"`
	Type             string        `json:"type"`
	Text             *textBody     `json:"text,omitempty"`
	Audio            *audioBody    `json:"audio,omitempty"`
	CallbackData     string        `json:"biz_opaque_callback_data,omitempty"`
}

type replyContext struct {
	MessageID string `json:"message_id"`
}

type textBody struct {
	Body       string `json:"body"`
	PreviewURL bool   `json:"preview_url"`
}

type audioBody struct {
	ID    string `json:"id"`
	Voice bool   `json:"voice,omitempty"`
}

// sendAnswer is Meta's answer to a send.
type sendAnswer struct {
	Messages []struct {
		ID string `json:"id"`
	} `json:"messages"`
}

// newOutgoing addresses a message. Meta takes phone numbers in "to" and
// business-scoped user ids (BSUIDs such as "US.13491208655302741918") in
// "recipient"; if both were set, "to" would win.
func newOutgoing(to, typ string, o sendOptions) outgoing {
	m := outgoing{MessagingProduct: "whatsapp", RecipientType: "individual", Type: typ, CallbackData: o.tag}
	if isBSUID(to) {
		m.Recipient = to
	} else {
		m.To = to
	}
	if o.replyTo != "" {
		m.Context = &replyContext{MessageID: o.replyTo}
	}
	return m
}

// isBSUID tells a business-scoped user id from a phone number: a BSUID starts
// with an ISO 3166 two-letter country code and a period, which no phone number
// or wa_id does.
func isBSUID(to string) bool {
	return len(to) > 3 && isASCIILetter(to[0]) && isASCIILetter(to[1]) && to[2] == '.'
}

func isASCIILetter(b byte) bool {
	return ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z')
}

func collect(opts []SendOption) sendOptions {
	var o sendOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// send posts one message and returns its wamid.
func (c *Client) send(ctx context.Context, op, phoneNumberID string, m outgoing) (string, error) {
	var answer sendAnswer
	if err := c.postJSON(ctx, op, c.endpoint(phoneNumberID, "messages"), true, m, &answer); err != nil {
		return "", err
	}
	if len(answer.Messages) == 0 || answer.Messages[0].ID == "" {
		return "", errors.New("answer has no message id")
	}
	return answer.Messages[0].ID, nil
}

// SendText sends body to the user from phoneNumberID, the number that received
// their message. A body longer than WhatsApp's 4096 characters goes out as
// several messages, split at paragraph, line or sentence ends and never inside
// a character or emoji, and sent one after the other so they arrive in order.
// It returns the wamids sent; after a failure part-way, the ones sent so far.
func (c *Client) SendText(ctx context.Context, phoneNumberID, to, body string, opts ...SendOption) ([]string, error) {
	if body == "" {
		return nil, errors.New("send text: empty body")
	}
	o := collect(opts)
	var ids []string
	for i, part := range SplitText(body) {
		m := newOutgoing(to, "text", o)
		o.replyTo = "" // Only the first part quotes the user's message.
		m.Text = &textBody{Body: part}
		id, err := c.send(ctx, "send text", phoneNumberID, m)
		if err != nil {
			return ids, fmt.Errorf("send text part %d: %w", i+1, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// SendAudio sends uploaded media as an audio message. With voice set, an
// OGG/Opus file shows as a voice note (with a play button up to 512 KB).
func (c *Client) SendAudio(ctx context.Context, phoneNumberID, to, mediaID string, voice bool, opts ...SendOption) (string, error) {
	m := newOutgoing(to, "audio", collect(opts))
	m.Audio = &audioBody{ID: mediaID, Voice: voice}
	id, err := c.send(ctx, "send audio", phoneNumberID, m)
	if err != nil {
		return "", fmt.Errorf("send audio: %w", err)
	}
	return id, nil
}

// readReceipt is the body of POST /{phone_number_id}/messages for a receipt.
type readReceipt struct {
	MessagingProduct string           `json:"messaging_product"`
	Status           string           `json:"status"`
	MessageID        string           `json:"message_id"`
	TypingIndicator  *typingIndicator `json:"typing_indicator,omitempty"`
}

type typingIndicator struct {
	Type string `json:"type"`
}

// MarkRead shows the user's message wamid as read (blue ticks). With typing
// set, it also shows "typing…" until the reply arrives or 25 seconds pass.
func (c *Client) MarkRead(ctx context.Context, phoneNumberID, wamid string, typing bool) error {
	r := readReceipt{MessagingProduct: "whatsapp", Status: "read", MessageID: wamid}
	if typing {
		r.TypingIndicator = &typingIndicator{Type: "text"}
	}
	var answer struct {
		Success bool `json:"success"`
	}
	if err := c.postJSON(ctx, "mark read", c.endpoint(phoneNumberID, "messages"), false, r, &answer); err != nil {
		return fmt.Errorf("mark read: %w", err)
	}
	if !answer.Success {
		return errors.New("mark read: answer has no success")
	}
	return nil
}
