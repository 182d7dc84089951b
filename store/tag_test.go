package store

import (
	"strings"
	"testing"
)

func TestTags(t *testing.T) {
	const wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTdCNUY0RjEzRTQ5QjA1RDc2RQA="
	tags, err := NewTags("app-secret")
	if err != nil {
		t.Fatal(err)
	}
	tag := tags.Seal(wamid, "text.2")
	if len(tag) > 512 {
		t.Errorf("tag has %d characters, Meta keeps at most 512", len(tag))
	}
	if strings.Contains(tag, "MTY1MDM4Nzk0Mzk") || strings.Contains(tag, "16503879439") {
		t.Errorf("tag %q shows the wamid or the number", tag)
	}
	// Another instance with the same secret opens it.
	other, _ := NewTags("app-secret")
	if id, part, ok := other.Open(tag); !ok || id != wamid || part != "text.2" {
		t.Errorf("Open(Seal(wamid, text.2)) = %q, %q, %v", id, part, ok)
	}
	wrongKey, _ := NewTags("another-secret")
	altered := tag[:len(tag)-2] + "AA"
	for name, bad := range map[string]string{
		"another secret": "",
		"altered":        altered,
		"not ours":       "order-1234",
		"empty":          "",
	} {
		opener := tags
		if name == "another secret" {
			opener, bad = wrongKey, tag
		}
		if id, part, ok := opener.Open(bad); ok {
			t.Errorf("%s: Open(%q) = %q, %q, true; want not ok", name, bad, id, part)
		}
	}
	if _, err := NewTags(""); err == nil {
		t.Error("NewTags(\"\") succeeded; want an error")
	}
}
