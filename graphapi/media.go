package graphapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"github.com/patternai/whatsapp-node/internal/localnet"
)

// Media errors. Both are permanent: the same file fails the same way again.
var (
	ErrMediaTooLarge    = errors.New("media larger than allowed")
	ErrChecksumMismatch = errors.New("media sha256 does not match")
	// ErrInsecureURL refuses a download URL that would carry the access
	// token in clear: Meta's are https, so another one is not Meta's.
	ErrInsecureURL = errors.New("media url is not https: the access token is not sent over it")
)

// UploadMedia uploads r for use in a message from phoneNumberID and returns
// its media id, valid for 30 days. mimeType may carry parameters, such as
// "audio/ogg; codecs=opus" for a voice note: Meta takes the bare type, and
// accepts OGG only with the Opus codec. The file is read into memory first,
// so that a retry can send it again.
func (c *Client) UploadMedia(ctx context.Context, phoneNumberID string, r io.Reader, mimeType, filename string) (string, error) {
	mediaType, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		return "", fmt.Errorf("upload media: mime type %q: %w", mimeType, err)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	if err := writeUploadForm(w, r, mediaType, filename); err != nil {
		return "", fmt.Errorf("upload media: %w", err)
	}
	req := request{
		op:          "upload media",
		method:      http.MethodPost,
		url:         c.endpoint(phoneNumberID, "media"),
		body:        body.Bytes(),
		contentType: w.FormDataContentType(),
	}
	var answer struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, req, decodeJSON(&answer)); err != nil {
		return "", fmt.Errorf("upload media: %w", err)
	}
	if answer.ID == "" {
		return "", errors.New("upload media: answer has no media id")
	}
	return answer.ID, nil
}

// writeUploadForm writes the three parts Meta expects: messaging_product,
// type, and the file with its content type (CreateFormFile would label it
// application/octet-stream).
func writeUploadForm(w *multipart.Writer, r io.Reader, mediaType, filename string) error {
	if err := w.WriteField("messaging_product", "whatsapp"); err != nil {
		return err
	}
	if err := w.WriteField("type", mediaType); err != nil {
		return err
	}
	header := textproto.MIMEHeader{}
	header.Set("Content-Disposition", mime.FormatMediaType("form-data",
		map[string]string{"name": "file", "filename": filename}))
	header.Set("Content-Type", mediaType)
	part, err := w.CreatePart(header)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, r); err != nil {
		return fmt.Errorf("read file: %w", err)
	}
	return w.Close()
}

// Download is a media file fetched from Meta.
type Download struct {
	Data     []byte
	MIMEType string
	SHA256   string // hex of Data's digest, checked against what was given
}

// mediaInfo is Meta's answer to GET /{media_id}.
type mediaInfo struct {
	URL      string `json:"url"`
	MIMEType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	FileSize int64  `json:"file_size"`
}

// DownloadMedia fetches the media a user sent. It asks Meta for a download URL,
// then fetches that URL, both with the bearer token. The URL lives five
// minutes, so a 404 on it is answered with one fresh URL. Files over maxBytes
// are refused with ErrMediaTooLarge, before download when Meta announces the
// size. The digest must match both wantSHA256 (from the webhook; hex or
// base64, or empty to skip) and the one Meta announces with the URL, else
// ErrChecksumMismatch.
func (c *Client) DownloadMedia(ctx context.Context, mediaID string, maxBytes int64, wantSHA256 string) (*Download, error) {
	info, err := c.mediaInfo(ctx, mediaID, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("download media: %w", err)
	}
	data, contentType, err := c.fetchMedia(ctx, info.URL, maxBytes)
	if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.HTTPStatus == http.StatusNotFound {
		if info, err = c.mediaInfo(ctx, mediaID, maxBytes); err != nil {
			return nil, fmt.Errorf("download media: refresh expired url: %w", err)
		}
		data, contentType, err = c.fetchMedia(ctx, info.URL, maxBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("download media: %w", err)
	}
	sum := sha256.Sum256(data)
	for _, want := range []string{wantSHA256, info.SHA256} {
		if want != "" && !sameDigest(sum[:], want) {
			return nil, fmt.Errorf("download media: got sha256 %x, want %s: %w", sum, want, ErrChecksumMismatch)
		}
	}
	d := &Download{Data: data, MIMEType: info.MIMEType, SHA256: hex.EncodeToString(sum[:])}
	if d.MIMEType == "" {
		d.MIMEType = contentType
	}
	return d, nil
}

// mediaInfo asks Meta where media lives and refuses it when Meta announces a
// size over maxBytes.
func (c *Client) mediaInfo(ctx context.Context, mediaID string, maxBytes int64) (*mediaInfo, error) {
	req := request{op: "get media url", method: http.MethodGet, url: c.endpoint(mediaID)}
	var info mediaInfo
	if err := c.do(ctx, req, decodeJSON(&info)); err != nil {
		return nil, err
	}
	if info.URL == "" {
		return nil, errors.New("answer has no media url")
	}
	if info.FileSize > maxBytes {
		return nil, fmt.Errorf("%d bytes, limit %d: %w", info.FileSize, maxBytes, ErrMediaTooLarge)
	}
	return &info, nil
}

// fetchMedia downloads rawURL, reading at most maxBytes. It returns the body and
// its content type.
func (c *Client) fetchMedia(ctx context.Context, rawURL string, maxBytes int64) ([]byte, string, error) {
	if !localnet.PrivateURL(rawURL) {
		return nil, "", ErrInsecureURL
	}
	var data []byte
	var contentType string
	req := request{op: "download media", method: http.MethodGet, url: rawURL}
	err := c.do(ctx, req, func(resp *http.Response) error {
		if resp.ContentLength > maxBytes {
			return fmt.Errorf("%d bytes, limit %d: %w", resp.ContentLength, maxBytes, ErrMediaTooLarge)
		}
		var err error
		if data, err = io.ReadAll(io.LimitReader(resp.Body, maxBytes+1)); err != nil {
			return fmt.Errorf("read media: %w", err)
		}
		if int64(len(data)) > maxBytes {
			return fmt.Errorf("over %d bytes: %w", maxBytes, ErrMediaTooLarge)
		}
		contentType = resp.Header.Get("Content-Type")
		return nil
	})
	return data, contentType, err
}

// sameDigest compares a digest with one written in hex (Meta's media URL
// answer) or base64 (webhooks). One that is neither matches nothing.
func sameDigest(sum []byte, want string) bool {
	if got, err := hex.DecodeString(want); err == nil {
		return bytes.Equal(got, sum)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if got, err := enc.DecodeString(want); err == nil {
			return bytes.Equal(got, sum)
		}
	}
	return false
}
