package reply

import (
	"math"
	"testing"

	"github.com/patternai/whatsapp-node/gemini"
)

func TestCostUSD(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cost cost
		want float64
	}{
		{"nothing used", cost{}, 0},
		// The README's first row: 550 tokens in, 30 out, 120 characters spoken.
		{"a short text answer", cost{Usage: gemini.Usage{PromptTokens: 550, AnswerTokens: 30}, ttsChars: 120}, 0.00470},
		// Its fourth: the same with 225 tokens and 900 characters, and 8 s heard.
		{"a long answer to a voice note", cost{Usage: gemini.Usage{PromptTokens: 550, AnswerTokens: 225},
			audioInSeconds: 8, ttsChars: 900}, 0.03198},
	}
	for _, tt := range tests {
		if got := tt.cost.usd(); math.Abs(got-tt.want) > 0.00001 {
			t.Errorf("%s: usd = %.5f, want %.5f", tt.name, got, tt.want)
		}
	}
}
