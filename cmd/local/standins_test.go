package main

import (
	"strings"
	"testing"
)

func TestChooseStandIns(t *testing.T) {
	t.Parallel()
	all := standIns{Meta: true, Gemini: true, Speech: true}
	google := map[string]string{"GOOGLE_CLOUD_PROJECT": "my-project"}
	tests := []struct {
		flag    string
		chat    bool
		env     map[string]string
		want    standIns
		wantErr string
	}{
		{flag: "auto", want: all},
		{flag: "auto", env: google, want: standIns{Meta: true}},
		{flag: "auto", env: map[string]string{"WHATSAPP_ACCESS_TOKEN": "EAAG"}, want: standIns{Gemini: true, Speech: true}},
		{flag: "auto", chat: true, env: map[string]string{"WHATSAPP_ACCESS_TOKEN": "EAAG"}, want: all},
		{flag: "auto", env: map[string]string{"GOOGLE_VERTEX_BASE_URL": "http://127.0.0.1:1"}, want: standIns{Meta: true, Speech: true}},
		{flag: "auto", env: map[string]string{"TTS_ENDPOINT": "127.0.0.1:1"}, want: standIns{Meta: true, Gemini: true}},
		{flag: "auto", env: map[string]string{"GOOGLE_CLOUD_PROJECT": "  "}, want: all},
		{flag: "all", env: google, want: all},
		{flag: "none", want: standIns{}},
		{flag: "Meta, speech", env: google, want: standIns{Meta: true, Speech: true}},
		{flag: "gemini", chat: true, wantErr: "-sandbox must include meta"},
		{flag: "none", chat: true, wantErr: "-sandbox must include meta"},
		{flag: "meta,graph", wantErr: `unknown service "graph"`},
	}
	for _, tt := range tests {
		got, err := chooseStandIns(tt.flag, tt.chat, mapEnv(tt.env))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("chooseStandIns(%q, chat=%v, %v) error = %v, want one containing %q", tt.flag, tt.chat, tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("chooseStandIns(%q, chat=%v, %v) = %+v, %v; want %+v", tt.flag, tt.chat, tt.env, got, err, tt.want)
		}
	}
}
