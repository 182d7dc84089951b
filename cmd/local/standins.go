package main

import (
	"errors"
	"fmt"
	"strings"
)

// standIns says which outside services the sandbox replaces.
type standIns struct {
	Meta, Gemini, Speech bool
}

func (s standIns) any() bool { return s.Meta || s.Gemini || s.Speech }

// sandboxUsage documents -sandbox.
const sandboxUsage = `which services the sandbox stands in for: "auto" (those the environment does not configure), ` +
	`"all", "none", or a comma-separated list of meta, gemini and speech`

// chooseStandIns reads -sandbox. With "auto", the sandbox stands in for each
// service the environment does not configure: Meta without
// WHATSAPP_ACCESS_TOKEN, Gemini without GOOGLE_CLOUD_PROJECT or
// GOOGLE_VERTEX_BASE_URL, Speech without GOOGLE_CLOUD_PROJECT, SPEECH_ENDPOINT
// or TTS_ENDPOINT. The chat plays the user's WhatsApp through the Meta
// stand-in, so it always has one.
func chooseStandIns(flag string, chat bool, getenv func(string) string) (standIns, error) {
	set := func(names ...string) bool {
		for _, n := range names {
			if strings.TrimSpace(getenv(n)) != "" {
				return true
			}
		}
		return false
	}
	var s standIns
	switch flag = strings.ToLower(strings.TrimSpace(flag)); flag {
	case "auto":
		s = standIns{
			Meta:   chat || !set("WHATSAPP_ACCESS_TOKEN"),
			Gemini: !set("GOOGLE_CLOUD_PROJECT", "GOOGLE_VERTEX_BASE_URL"),
			Speech: !set("GOOGLE_CLOUD_PROJECT", "SPEECH_ENDPOINT", "TTS_ENDPOINT"),
		}
	case "all":
		s = standIns{Meta: true, Gemini: true, Speech: true}
	case "none", "":
	default:
		for _, name := range strings.Split(flag, ",") {
			switch strings.TrimSpace(name) {
			case "meta":
				s.Meta = true
			case "gemini":
				s.Gemini = true
			case "speech":
				s.Speech = true
			default:
				return standIns{}, fmt.Errorf("-sandbox=%s: unknown service %q; want %s", flag, name, sandboxUsage)
			}
		}
	}
	if chat && !s.Meta {
		return standIns{}, errors.New("-chat plays the user's WhatsApp through the Meta stand-in: -sandbox must include meta")
	}
	return s, nil
}
