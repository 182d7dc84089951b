package media

import (
	"net/url"
	"strings"
	"testing"
)

func TestObjectKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want string
	}{
		{"inbound/wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUZCNzM.ogg", "inbound/wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUZCNzM.ogg"},
		{"replies/wamid.HBg+ab/cd==.ogg", "replies/wamid.HBg%2Bab/cd%3D%3D.ogg"},
		{"../../etc/passwd", "%2E%2E/%2E%2E/etc/passwd"},
		{"/etc/passwd", "%2Fetc/passwd"},
		{"a//b", "a%2F%2Fb"},
		{"a/", "a%2F"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"a/./b", "a/%2E/b"},
		{"...", "..."},
		{`a\..\b`, "a%5C..%5Cb"},
		{"a%2Fb", "a%252Fb"},
		{"+tmp-x", "%2Btmp-x"},
		{"voz ñ.ogg", "voz%20%C3%B1.ogg"},
		{"line\nbreak", "line%0Abreak"},
	}
	for _, tt := range tests {
		got, err := objectKey(tt.name)
		if err != nil || got != tt.want {
			t.Errorf("objectKey(%q) = %q, %v; want %q, nil", tt.name, got, err, tt.want)
			continue
		}
		// Percent-decoding the key gives the name back, which proves that
		// different names get different keys.
		if back, err := url.PathUnescape(got); err != nil || back != tt.name {
			t.Errorf("PathUnescape(%q) = %q, %v; want %q", got, back, err, tt.name)
		}
	}
}

func TestObjectKeyRejects(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", strings.Repeat("x", maxKeyLen+1), strings.Repeat("=", 400)} {
		if got, err := objectKey(name); err == nil {
			t.Errorf("objectKey(%.20q...) = %.20q..., want an error", name, got)
		}
	}
}
