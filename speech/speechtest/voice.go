package speechtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Voice reads text aloud in language (a BCP-47 code such as "en-US", or
// empty) and returns it as OGG/Opus audio.
type Voice func(ctx context.Context, text, language string) ([]byte, error)

// LocalVoice returns a Voice that speaks with espeak-ng and encodes with
// opusenc (Debian's espeak-ng and opus-tools), the way the recorded files
// were made, or an error naming the programs that are missing.
func LocalVoice() (Voice, error) {
	var missing []string
	for _, name := range []string{"espeak-ng", "opusenc"} {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s not found on PATH", strings.Join(missing, " and "))
	}
	return speakLocally, nil
}

// speakLocally runs espeak-ng, then opusenc on its WAV output. A language
// espeak-ng has no voice for ("xx-YY") falls back to its base language
// ("xx"), then to espeak-ng's default voice.
func speakLocally(ctx context.Context, text, language string) ([]byte, error) {
	var wav []byte
	var err error
	for _, voice := range espeakVoices(language) {
		args := []string{"--stdout", "--stdin"}
		if voice != "" {
			args = append(args, "-v", voice)
		}
		if wav, err = run(ctx, []byte(text), "espeak-ng", args...); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return run(ctx, wav, "opusenc", "--quiet", "--bitrate", "24", "-", "-")
}

// espeakVoices lists the espeak-ng voices to try for a BCP-47 language, best
// first; "" is espeak-ng's default.
func espeakVoices(language string) []string {
	language = strings.ToLower(language)
	voices := []string{language}
	if base, _, ok := strings.Cut(language, "-"); ok {
		voices = append(voices, base)
	}
	if language != "" {
		voices = append(voices, "")
	}
	return voices
}

// run runs a program with stdin and returns its standard output, or an
// error that carries its standard error.
func run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	if stdout.Len() == 0 {
		return nil, errors.New(name + ": no output")
	}
	return stdout.Bytes(), nil
}
