package reply

import (
	"math"
	"testing"
)

func TestEstimate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fields []any
		want   float64
	}{
		{"nothing recorded", []any{"llm_ms", 120.5}, 0},
		// The README's first row: 550 tokens in, 30 out, 120 characters spoken.
		{"a short text answer", []any{"prompt_tokens", 550, "answer_tokens", 30, "tts_chars", 120}, 0.00470},
		// Its fourth: the same with 225 tokens and 900 characters, and 8 s heard.
		{"a long answer to a voice note", []any{"audio_in_seconds", 8.0, "prompt_tokens", int32(550),
			"answer_tokens", int64(225), "tts_chars", 900}, 0.03198},
		{"characters estimated from the voice note", []any{"audio_out_seconds", 8.0, "audio_out_bytes", 16000}, 120 * 30.0 / 1e6},
	}
	for _, tt := range tests {
		if got := estimate(tt.fields); math.Abs(got-tt.want) > 0.00001 {
			t.Errorf("%s: estimate = %.5f, want %.5f", tt.name, got, tt.want)
		}
	}
}
