package localnet

import "testing"

func TestPrivateURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		"https://graph.facebook.com":   true,
		"http://127.0.0.1:9":           true,
		"http://localhost:8080/v1":     true,
		"http://[::1]:9":               true,
		"http://10.0.0.1:9":            false,
		"http://localhost.example.com": false,
		"ftp://127.0.0.1":              false,
		"https://":                     false,
		"127.0.0.1:9":                  false,
		"http://%zz":                   false,
	} {
		if got := PrivateURL(raw); got != want {
			t.Errorf("PrivateURL(%q) = %v, want %v", raw, got, want)
		}
	}
}

func TestHostPort(t *testing.T) {
	t.Parallel()
	for hostport, want := range map[string]bool{
		"127.0.0.1:8085": true,
		"localhost:8687": true,
		"[::1]:9":        true,
		"10.0.0.1:8085":  false,
		"example.com:80": false,
		"127.0.0.1":      false, // no port
	} {
		if got := HostPort(hostport); got != want {
			t.Errorf("HostPort(%q) = %v, want %v", hostport, got, want)
		}
	}
}
