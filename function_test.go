package whatsappnode

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNoSecretNoService: without its secrets the function serves nothing,
// on every request, and says why only in its log.
func TestNoSecretNoService(t *testing.T) {
	t.Setenv("WHATSAPP_APP_SECRET", "")
	t.Setenv("WHATSAPP_VERIFY_TOKEN", "")
	t.Setenv("WHATSAPP_ACCESS_TOKEN", "")
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/?hub.mode=subscribe&hub.verify_token=&hub.challenge=1", nil),
		httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"object":"whatsapp_business_account"}`)),
	} {
		rec := httptest.NewRecorder()
		Webhook(rec, req)
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("%s / without secrets = %d, want 500", req.Method, rec.Code)
		}
		if strings.Contains(rec.Body.String(), "WHATSAPP") {
			t.Errorf("response names the configuration: %q", rec.Body.String())
		}
	}
}
