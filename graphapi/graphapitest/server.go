// Package graphapitest is an in-process fake of the WhatsApp Cloud API (Graph
// API) for tests and the local sandbox. Point graphapi.Config.BaseURL at
// Server.URL and use Token as the access token; the server records every
// request, answers sends with fresh wamids, stores uploads, serves media
// through expiring URLs, and fails calls on demand.
//
// In a test:
//
//	srv := graphapitest.NewServer(t)
//	client := graphapi.New(graphapi.Config{BaseURL: srv.URL, Token: graphapitest.Token})
//	srv.FailNext(graphapitest.KindMessages, 1, http.StatusBadRequest,
//		&graphapi.APIError{Code: graphapi.CodeOutsideWindow, Message: "Re-engagement message"})
//
// Outside a test, New starts one on 127.0.0.1 (or WithAddr) until Close.
package graphapitest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/graphapi"
)

// Token is the access token a Server accepts unless WithToken says otherwise.
const Token = "graphapitest-token"

// Kind names a family of Graph calls, for FailNext, DropNext and Count.
type Kind string

// The calls the fake serves.
const (
	KindMessages      Kind = "messages"       // POST /{phone}/messages sending a message
	KindMarkRead      Kind = "mark_read"      // POST /{phone}/messages with status "read"
	KindMediaUpload   Kind = "media_upload"   // POST /{phone}/media
	KindMediaGet      Kind = "media_get"      // GET /{media_id}, which returns a download URL
	KindMediaDownload Kind = "media_download" // GET of a download URL
	KindOther         Kind = "other"          // anything else, answered with a Graph error
)

// maxUpload is Meta's largest media file (documents, 100 MB).
const maxUpload = 100 << 20

// downloadPrefix is where the fake serves media; real URLs point at another
// host (lookaside.fbsbx.com), which the client must not care about.
const downloadPrefix = "/graphapitest/download/"

// Request is one HTTP request the server received.
type Request struct {
	Kind   Kind
	Method string
	Path   string
	Header http.Header
	Body   []byte         // raw, as received (multipart included)
	JSON   map[string]any // Body decoded, for JSON requests
	Status int            // status answered; 0 when the connection was dropped
}

// Message is a message the server accepted for sending.
type Message struct {
	ID            string // the wamid it answered
	PhoneNumberID string
	To            string // "to" (phone number) or, failing that, "recipient" (BSUID)
	Type          string
	Text          string // text.body
	PreviewURL    bool
	AudioID       string // audio.id
	Voice         bool   // audio.voice
	ReplyTo       string // context.message_id
	CallbackData  string // biz_opaque_callback_data, which status webhooks echo
	Body          []byte // the JSON as received
}

// Fault is what SetFaults makes of one request.
type Fault struct {
	// Delay holds the request this long before it is served.
	Delay time.Duration
	// Drop closes the connection before the request is served: Meta never
	// took it.
	Drop bool
	// Lose serves the request (a send is accepted and recorded) and then
	// closes the connection instead of answering: the client cannot tell
	// whether Meta took it.
	Lose bool
}

// ReadReceipt is a read receipt the server accepted.
type ReadReceipt struct {
	PhoneNumberID string
	MessageID     string
	Typing        bool // a typing indicator was asked for
}

// Media is a file the server holds, uploaded or added with AddMedia.
type Media struct {
	ID            string
	PhoneNumberID string // empty for AddMedia
	MIMEType      string // the "type" form field, or AddMedia's mime
	FileType      string // the Content-Type of the file part
	Filename      string
	Data          []byte
}

// Option configures a Server.
type Option func(*options)

type options struct {
	token     string
	addr      string
	onMessage func(Message)
}

// WithToken makes the server accept token instead of Token.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithAddr makes the server listen on addr, such as "127.0.0.1:8090" for a
// sandbox whose configuration names a fixed URL.
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

// WithOnMessage calls f with each message the server accepts, so a local
// sandbox can show the replies as they leave.
func WithOnMessage(f func(Message)) Option { return func(o *options) { o.onMessage = f } }

// Server is a fake Graph API. Its methods are safe for concurrent use.
type Server struct {
	URL   string // base URL, without version
	Token string // bearer token it accepts

	srv       *httptest.Server
	onMessage func(Message)

	mu          sync.Mutex
	seq         int
	requests    []Request
	messages    []Message
	receipts    []ReadReceipt
	media       map[string]*Media
	uploads     []string // media ids, in upload order
	urls        map[string]downloadURL
	expireNext  int
	failures    map[Kind][]*failure
	dropPending map[Kind]int
	faults      func(Kind) Fault
}

// SetFaults makes every later request ask f what to do with it, so a test
// can inject faults at random (f must be safe for concurrent use). nil stops.
func (s *Server) SetFaults(f func(Kind) Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

type downloadURL struct {
	mediaID string
	expired bool
}

type failure struct {
	remaining int
	status    int
	err       *graphapi.APIError
}

// New starts a server on 127.0.0.1 (or the WithAddr address). Close it when done.
func New(opts ...Option) (*Server, error) {
	o := options{token: Token, addr: "127.0.0.1:0"}
	for _, opt := range opts {
		opt(&o)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("graphapitest: listen: %w", err)
	}
	s := &Server{
		Token:       o.token,
		onMessage:   o.onMessage,
		media:       map[string]*Media{},
		urls:        map[string]downloadURL{},
		failures:    map[Kind][]*failure{},
		dropPending: map[Kind]int{},
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	s.URL = s.srv.URL
	return s, nil
}

// NewServer starts a server for the test t and closes it when t ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close shuts the server down, waiting for requests in flight.
func (s *Server) Close() { s.srv.Close() }

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// Count returns how many requests of kind arrived, failed ones included: the
// number of attempts a client made.
func (s *Server) Count(kind Kind) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

// Messages returns the messages accepted for sending, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	copy(out, s.messages)
	return out
}

// ReadReceipts returns the read receipts accepted, in order.
func (s *Server) ReadReceipts() []ReadReceipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ReadReceipt, len(s.receipts))
	copy(out, s.receipts)
	return out
}

// Uploads returns the uploaded files, in order.
func (s *Server) Uploads() []Media {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Media, len(s.uploads))
	for i, id := range s.uploads {
		out[i] = *s.media[id]
	}
	return out
}

// Media returns the file with the given media id.
func (s *Server) Media(id string) (Media, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.media[id]
	if !ok {
		return Media{}, false
	}
	return *m, true
}

// AddMedia stores data as if a user had sent it and returns its media id,
// for DownloadMedia to fetch.
func (s *Server) AddMedia(data []byte, mimeType string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID("media")
	s.media[id] = &Media{ID: id, MIMEType: mimeType, Data: bytes.Clone(data)}
	return id
}

// PutMedia stores data under a chosen media id, such as the id a webhook
// fixture names.
func (s *Server) PutMedia(id string, data []byte, mimeType string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.media[id] = &Media{ID: id, MIMEType: mimeType, Data: bytes.Clone(data)}
}

// FailNext makes the next n requests of kind fail with status and, when
// graphErr is not nil, a Graph error body built from it (a missing fbtrace_id
// is made up); with a nil graphErr the body is plain text, as a proxy would
// answer. Calls queue up: a second FailNext applies after the first is used.
func (s *Server) FailNext(kind Kind, n, status int, graphErr *graphapi.APIError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[kind] = append(s.failures[kind], &failure{remaining: n, status: status, err: graphErr})
}

// DropNext makes the next n requests of kind end with the connection closed
// and no answer, as when a timeout strikes after the request was written.
// Such sends are not recorded as messages, though Meta might have sent them.
func (s *Server) DropNext(kind Kind, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropPending[kind] += n
}

// ExpireNextURL makes the next media download URL handed out expired on
// arrival, so that fetching it answers 404 as Meta's do after five minutes.
// Each call expires one more URL.
func (s *Server) ExpireNextURL() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireNext++
}

// nextID returns a fresh id with the given prefix. Callers hold s.mu.
func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s.graphapitest.%d", prefix, s.seq)
}

// serve routes a request, after recording it and applying planned failures.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// The slack above maxUpload leaves room for the multipart envelope.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxUpload+1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	kind, segments := classify(r, body)
	rec := Request{Kind: kind, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(body, &rec.JSON) // A malformed body stays nil and is refused below.
	}
	// The request is logged before it is answered, so that a client that
	// has its answer always finds its request counted.
	s.mu.Lock()
	index := len(s.requests)
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	rw := &recorder{ResponseWriter: w, onStatus: func(status int) {
		s.mu.Lock()
		s.requests[index].Status = status
		s.mu.Unlock()
	}}

	if s.dropIfPlanned(kind, w) {
		return
	}
	s.mu.Lock()
	faults := s.faults
	s.mu.Unlock()
	var fault Fault
	if faults != nil {
		fault = faults(kind)
	}
	time.Sleep(fault.Delay)
	if fault.Drop {
		hangUp(w)
		return
	}
	if fault.Lose {
		// The handler writes into a recorder that is thrown away.
		rw = &recorder{ResponseWriter: discardWriter{header: http.Header{}}, onStatus: rw.onStatus}
		defer hangUp(w)
	}
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		writeGraphError(rw, http.StatusUnauthorized, &graphapi.APIError{
			Code: graphapi.CodeAccessToken, Type: "OAuthException",
			Message: "Invalid OAuth access token - Cannot parse access token",
		})
		return
	}
	if f := s.takeFailure(kind); f != nil {
		if f.err == nil {
			http.Error(rw, http.StatusText(f.status), f.status)
			return
		}
		writeGraphError(rw, f.status, f.err)
		return
	}
	switch kind {
	case KindMessages:
		s.serveSend(rw, segments[1], body)
	case KindMarkRead:
		s.serveMarkRead(rw, segments[1], rec.JSON)
	case KindMediaUpload:
		s.serveUpload(rw, r, segments[1], body)
	case KindMediaGet:
		s.serveMediaGet(rw, segments[1])
	case KindMediaDownload:
		s.serveDownload(rw, strings.TrimPrefix(r.URL.Path, downloadPrefix))
	default:
		writeGraphError(rw, http.StatusBadRequest, &graphapi.APIError{
			Code: 2500, Type: "OAuthException", Message: "Unknown path components: " + r.URL.Path,
		})
	}
}

// classify names the call a request makes and splits its path into version
// and the segments after it.
func classify(r *http.Request, body []byte) (Kind, []string) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, downloadPrefix) {
		return KindMediaDownload, nil
	}
	segments := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segments) < 2 || !strings.HasPrefix(segments[0], "v") {
		return KindOther, segments
	}
	switch {
	case len(segments) == 3 && r.Method == http.MethodPost && segments[2] == "messages":
		var probe struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.Status == "read" {
			return KindMarkRead, segments
		}
		return KindMessages, segments
	case len(segments) == 3 && r.Method == http.MethodPost && segments[2] == "media":
		return KindMediaUpload, segments
	case len(segments) == 2 && r.Method == http.MethodGet:
		return KindMediaGet, segments
	}
	return KindOther, segments
}

func (s *Server) dropIfPlanned(kind Kind, w http.ResponseWriter) bool {
	s.mu.Lock()
	drop := s.dropPending[kind] > 0
	if drop {
		s.dropPending[kind]--
	}
	s.mu.Unlock()
	if !drop {
		return false
	}
	hangUp(w)
	return true
}

// hangUp closes the connection without any answer at all, which is what a
// client sees when its timeout strikes.
func hangUp(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
	}
}

// discardWriter is a ResponseWriter whose answer goes nowhere.
type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header       { return d.header }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

func (s *Server) takeFailure(kind Kind) *failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	queue := s.failures[kind]
	if len(queue) == 0 {
		return nil
	}
	f := queue[0]
	f.remaining--
	if f.remaining <= 0 {
		s.failures[kind] = queue[1:]
	}
	return f
}

// sendBody is what the fake reads of a send.
type sendBody struct {
	MessagingProduct string `json:"messaging_product"`
	To               string `json:"to"`
	Recipient        string `json:"recipient"`
	Type             string `json:"type"`
	Context          *struct {
		MessageID string `json:"message_id"`
	} `json:"context"`
	Text *struct {
		Body       string `json:"body"`
		PreviewURL bool   `json:"preview_url"`
	} `json:"text"`
	Audio *struct {
		ID    string `json:"id"`
		Voice bool   `json:"voice"`
	} `json:"audio"`
	CallbackData string `json:"biz_opaque_callback_data"`
}

// serveSend checks a send the way Meta would reject it and answers a wamid.
func (s *Server) serveSend(w http.ResponseWriter, phoneNumberID string, body []byte) {
	var b sendBody
	if err := json.Unmarshal(body, &b); err != nil {
		writeInvalidParameter(w, "invalid JSON: "+err.Error())
		return
	}
	m := Message{PhoneNumberID: phoneNumberID, To: b.To, Type: b.Type, CallbackData: b.CallbackData, Body: bytes.Clone(body)}
	if m.To == "" {
		m.To = b.Recipient
	}
	if b.Context != nil {
		m.ReplyTo = b.Context.MessageID
	}
	switch {
	case b.MessagingProduct != "whatsapp":
		writeInvalidParameter(w, "messaging_product must be whatsapp")
		return
	case m.To == "":
		writeInvalidParameter(w, "to or recipient is required")
		return
	case b.Type == "text" && b.Text != nil:
		m.Text, m.PreviewURL = b.Text.Body, b.Text.PreviewURL
		if n := len([]rune(m.Text)); n == 0 || n > graphapi.MaxTextLength {
			writeInvalidParameter(w, fmt.Sprintf("text.body has %d characters, must be 1 to 4096", n))
			return
		}
	case b.Type == "audio" && b.Audio != nil:
		m.AudioID, m.Voice = b.Audio.ID, b.Audio.Voice
	default:
		writeInvalidParameter(w, "type "+b.Type+" needs a matching object")
		return
	}
	s.mu.Lock()
	m.ID = s.nextID("wamid")
	s.messages = append(s.messages, m)
	s.mu.Unlock()
	if s.onMessage != nil {
		s.onMessage(m)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []map[string]string{{"input": m.To, "wa_id": m.To}},
		"messages":          []map[string]string{{"id": m.ID}},
	})
}

func (s *Server) serveMarkRead(w http.ResponseWriter, phoneNumberID string, body map[string]any) {
	wamid, _ := body["message_id"].(string)
	if body["messaging_product"] != "whatsapp" || wamid == "" {
		writeInvalidParameter(w, "messaging_product and message_id are required")
		return
	}
	typing, _ := body["typing_indicator"].(map[string]any)
	s.mu.Lock()
	s.receipts = append(s.receipts, ReadReceipt{
		PhoneNumberID: phoneNumberID, MessageID: wamid, Typing: typing["type"] == "text",
	})
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// serveUpload reads the multipart form Meta expects and stores the file.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, phoneNumberID string, body []byte) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		writeInvalidParameter(w, "upload must be multipart/form-data")
		return
	}
	form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(maxUpload)
	if err != nil {
		writeInvalidParameter(w, "bad multipart body: "+err.Error())
		return
	}
	defer form.RemoveAll()
	files := form.File["file"]
	if first(form.Value["messaging_product"]) != "whatsapp" || first(form.Value["type"]) == "" || len(files) != 1 {
		writeInvalidParameter(w, "messaging_product, type and one file are required")
		return
	}
	f, err := files[0].Open()
	if err != nil {
		writeInvalidParameter(w, "open file part: "+err.Error())
		return
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		writeInvalidParameter(w, "read file part: "+err.Error())
		return
	}
	m := &Media{
		PhoneNumberID: phoneNumberID,
		MIMEType:      first(form.Value["type"]),
		FileType:      files[0].Header.Get("Content-Type"),
		Filename:      files[0].Filename,
		Data:          data,
	}
	s.mu.Lock()
	m.ID = s.nextID("media")
	s.media[m.ID] = m
	s.uploads = append(s.uploads, m.ID)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"id": m.ID})
}

// serveMediaGet hands out a fresh download URL, as Meta does on each call.
func (s *Server) serveMediaGet(w http.ResponseWriter, mediaID string) {
	s.mu.Lock()
	m, ok := s.media[mediaID]
	var token string
	if ok {
		token = randomHex()
		s.urls[token] = downloadURL{mediaID: mediaID, expired: s.expireNext > 0}
		s.expireNext = max(s.expireNext-1, 0)
	}
	s.mu.Unlock()
	if !ok {
		writeGraphError(w, http.StatusBadRequest, &graphapi.APIError{
			Code: graphapi.CodeInvalidParameter, Subcode: 33, Type: "GraphMethodException",
			Message: fmt.Sprintf("Unsupported get request. Object with ID '%s' does not exist", mediaID),
		})
		return
	}
	sum := sha256.Sum256(m.Data)
	writeJSON(w, http.StatusOK, map[string]any{
		"messaging_product": "whatsapp",
		"url":               s.URL + downloadPrefix + token,
		"mime_type":         m.MIMEType,
		"sha256":            hex.EncodeToString(sum[:]),
		"file_size":         len(m.Data),
		"id":                m.ID,
	})
}

func (s *Server) serveDownload(w http.ResponseWriter, token string) {
	s.mu.Lock()
	u, ok := s.urls[token]
	var m *Media
	if ok && !u.expired {
		m = s.media[u.mediaID]
	}
	s.mu.Unlock()
	if m == nil {
		// Meta's media host answers an expired URL with a bare 404.
		http.Error(w, http.StatusText(http.StatusNotFound), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", m.MIMEType)
	w.Header().Set("Content-Length", fmt.Sprint(len(m.Data)))
	w.Write(m.Data)
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeInvalidParameter(w http.ResponseWriter, details string) {
	writeGraphError(w, http.StatusBadRequest, &graphapi.APIError{
		Code: graphapi.CodeInvalidParameter, Type: "OAuthException", Message: "(#100) Invalid parameter", Details: details,
	})
}

// writeGraphError answers in the shape of a Graph API error.
func writeGraphError(w http.ResponseWriter, status int, e *graphapi.APIError) {
	body := map[string]any{
		"message":    e.Message,
		"type":       e.Type,
		"code":       e.Code,
		"fbtrace_id": e.FBTraceID,
	}
	if e.Subcode != 0 {
		body["error_subcode"] = e.Subcode
	}
	if e.Details != "" {
		body["error_data"] = map[string]any{"messaging_product": "whatsapp", "details": e.Details}
	}
	if e.FBTraceID == "" {
		body["fbtrace_id"] = "A" + randomHex()[:22]
	}
	writeJSON(w, status, map[string]any{"error": body})
}

// recorder reports the status of an answer before any of it is sent.
type recorder struct {
	http.ResponseWriter
	onStatus    func(int)
	wroteHeader bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.wroteHeader = true
		r.onStatus(status)
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}
