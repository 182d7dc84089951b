package graphapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
)

// voiceNote stands in for an OGG/Opus file a user sent.
var voiceNote = append([]byte("OggS\x00\x02"), bytes.Repeat([]byte("opus frame "), 2000)...)

func sha256Of(data []byte) []byte {
	sum := sha256.Sum256(data)
	return sum[:]
}

func TestDownloadMedia(t *testing.T) {
	t.Parallel()
	sum := sha256Of(voiceNote)
	tests := []struct {
		name       string
		wantSHA256 string
	}{
		{"no digest given", ""},
		{"base64 digest, as in webhooks", base64.StdEncoding.EncodeToString(sum)},
		{"hex digest", hex.EncodeToString(sum)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := graphapitest.NewServer(t)
			id := srv.AddMedia(voiceNote, "audio/ogg; codecs=opus")
			c := newClient(srv, graphapi.Config{})

			d, err := c.DownloadMedia(t.Context(), id, 1<<20, tt.wantSHA256)
			if err != nil {
				t.Fatalf("DownloadMedia: %v", err)
			}
			if !bytes.Equal(d.Data, voiceNote) || d.MIMEType != "audio/ogg; codecs=opus" || d.SHA256 != hex.EncodeToString(sum) {
				t.Errorf("DownloadMedia = %d bytes of %q, sha256 %s; want %d bytes of audio/ogg; codecs=opus, sha256 %x",
					len(d.Data), d.MIMEType, d.SHA256, len(voiceNote), sum)
			}
			for _, r := range srv.Requests() {
				if got := r.Header.Get("Authorization"); got != "Bearer "+graphapitest.Token {
					t.Errorf("%s %s sent Authorization %q, want the bearer token", r.Method, r.Path, got)
				}
			}
			if got := srv.Count(graphapitest.KindMediaGet) + srv.Count(graphapitest.KindMediaDownload); got != 2 {
				t.Errorf("fake got %d requests, want 2 (url, then file)", got)
			}
		})
	}
}

func TestDownloadMediaExpiredURL(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	id := srv.AddMedia(voiceNote, "audio/ogg")
	srv.ExpireNextURL()
	c := newClient(srv, graphapi.Config{})

	d, err := c.DownloadMedia(t.Context(), id, 1<<20, "")
	if err != nil {
		t.Fatalf("DownloadMedia with an expired first url: %v", err)
	}
	if !bytes.Equal(d.Data, voiceNote) {
		t.Errorf("DownloadMedia = %d bytes, want the %d of the file", len(d.Data), len(voiceNote))
	}
	if gets, downloads := srv.Count(graphapitest.KindMediaGet), srv.Count(graphapitest.KindMediaDownload); gets != 2 || downloads != 2 {
		t.Errorf("fake got %d url requests and %d downloads, want 2 and 2", gets, downloads)
	}
}

func TestDownloadMediaRefreshesTheURLOnlyOnce(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	id := srv.AddMedia(voiceNote, "audio/ogg")
	srv.ExpireNextURL()
	srv.ExpireNextURL()
	c := newClient(srv, graphapi.Config{})

	_, err := c.DownloadMedia(t.Context(), id, 1<<20, "")
	if apiErr, ok := errors.AsType[*graphapi.APIError](err); !ok || apiErr.HTTPStatus != http.StatusNotFound {
		t.Fatalf("DownloadMedia with two expired urls = %v, want an HTTP 404 APIError", err)
	}
	if gets := srv.Count(graphapitest.KindMediaGet); gets != 2 {
		t.Errorf("fake got %d url requests, want 2", gets)
	}
}

func TestDownloadMediaRefusesLargeFiles(t *testing.T) {
	t.Parallel()
	srv := graphapitest.NewServer(t)
	id := srv.AddMedia(voiceNote, "audio/ogg")
	c := newClient(srv, graphapi.Config{})

	_, err := c.DownloadMedia(t.Context(), id, int64(len(voiceNote)-1), "")
	if !errors.Is(err, graphapi.ErrMediaTooLarge) {
		t.Fatalf("DownloadMedia over the cap = %v, want ErrMediaTooLarge", err)
	}
	if graphapi.IsTransient(err) {
		t.Errorf("IsTransient(%v) = true, want false", err)
	}
	if n := srv.Count(graphapitest.KindMediaDownload); n != 0 {
		t.Errorf("fake got %d downloads, want none: Meta announced the size", n)
	}

	// When the size is not announced, the client stops reading at the cap.
	c = graphapi.New(graphapi.Config{BaseURL: standIn(t, voiceNote, "", 0), Token: graphapitest.Token})
	if _, err := c.DownloadMedia(t.Context(), "4242", int64(len(voiceNote)-1), ""); !errors.Is(err, graphapi.ErrMediaTooLarge) {
		t.Errorf("DownloadMedia of an unannounced file over the cap = %v, want ErrMediaTooLarge", err)
	}
}

func TestDownloadMediaChecksums(t *testing.T) {
	t.Parallel()
	other := sha256Of([]byte("another file"))
	tests := []struct {
		name       string
		wantSHA256 string
		announced  string // sha256 in Meta's url answer; "" for the true one
	}{
		{"wrong hex digest given", hex.EncodeToString(other), ""},
		{"wrong base64 digest given", base64.StdEncoding.EncodeToString(other), ""},
		{"garbage digest given", "not a digest", ""},
		{"wrong digest announced by Meta", "", hex.EncodeToString(other)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			baseURL, id := mediaHost(t, voiceNote, tt.announced)
			c := graphapi.New(graphapi.Config{BaseURL: baseURL, Token: graphapitest.Token})

			_, err := c.DownloadMedia(t.Context(), id, 1<<20, tt.wantSHA256)
			if !errors.Is(err, graphapi.ErrChecksumMismatch) {
				t.Fatalf("DownloadMedia = %v, want ErrChecksumMismatch", err)
			}
			if graphapi.IsTransient(err) {
				t.Errorf("IsTransient(%v) = true, want false", err)
			}
		})
	}
}

// mediaHost serves one file through the fake, or, when announced is set, a
// bare Graph stand-in that announces that digest for it (the fake always
// tells the truth).
func mediaHost(t *testing.T, data []byte, announced string) (baseURL, mediaID string) {
	t.Helper()
	if announced == "" {
		srv := graphapitest.NewServer(t)
		return srv.URL, srv.AddMedia(data, "audio/ogg")
	}
	return standIn(t, data, announced, len(data)), "4242"
}

// standIn serves media 4242 the way Meta does, but announcing the given
// digest and size, and sending the file without a Content-Length.
func standIn(t *testing.T, data []byte, sha string, size int) (baseURL string) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("GET /v25.0/4242", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"messaging_product":"whatsapp","url":%q,"mime_type":"audio/ogg","sha256":%q,"file_size":%d,"id":"4242"}`,
			srv.URL+"/file", sha, size)
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // Chunked: the size shows only while reading.
		w.Write(data)
	})
	return srv.URL
}

// TestDownloadMediaKeepsTheTokenPrivate: the token goes with a media download
// only over https, or plain http to this machine (the fakes); any other URL in
// Meta's answer is refused before a connection is made.
func TestDownloadMediaKeepsTheTokenPrivate(t *testing.T) {
	t.Parallel()
	files := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+graphapitest.Token {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		w.Write(voiceNote)
	}))
	t.Cleanup(files.Close)
	// Should the check ever fail, the test must still not leave this machine.
	transport := files.Client().Transport.(*http.Transport).Clone()
	transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
			return nil, fmt.Errorf("test dialer: %s is not loopback", addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	httpClient := &http.Client{Transport: transport}
	tests := []struct {
		name    string
		fileURL string
		refused bool
	}{
		{"https", files.URL + "/voice.ogg", false},
		{"http to another host", "http://lookaside.example.com/voice.ogg", true},
		{"http to a private address", "http://10.1.2.3/voice.ogg", true},
		{"http to a name that only starts like localhost", "http://localhost.example.com/voice.ogg", true},
		{"another scheme on loopback", "ftp://127.0.0.1/voice.ogg", true},
		{"no scheme", "//lookaside.example.com/voice.ogg", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var downloads []string
			meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v25.0/media-1" {
					downloads = append(downloads, r.URL.String())
					http.NotFound(w, r)
					return
				}
				fmt.Fprintf(w, `{"url":%q,"mime_type":"audio/ogg"}`, tt.fileURL)
			}))
			t.Cleanup(meta.Close)
			c := graphapi.New(graphapi.Config{BaseURL: meta.URL, Version: "v25.0", Token: graphapitest.Token,
				HTTPClient: httpClient, BaseBackoff: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})

			d, err := c.DownloadMedia(t.Context(), "media-1", 1<<20, "")
			if tt.refused {
				if !errors.Is(err, graphapi.ErrInsecureURL) {
					t.Errorf("DownloadMedia from %s = %v, want ErrInsecureURL", tt.fileURL, err)
				}
				if graphapi.IsTransient(err) {
					t.Errorf("IsTransient(%v) = true, want a permanent refusal", err)
				}
			} else if err != nil || !bytes.Equal(d.Data, voiceNote) {
				t.Errorf("DownloadMedia from %s = %v, want the file", tt.fileURL, err)
			}
			if len(downloads) > 0 {
				t.Errorf("Meta's server got %v, want only the media url request", downloads)
			}
		})
	}
}
