package speech

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// fixture durations as opusinfo 0.2 reports them ("Playback length"), which
// rounds to the millisecond.
var fixtures = []struct {
	path string
	want time.Duration
}{
	{"../testdata/voice_note.ogg", 3638 * time.Millisecond},
	{"../testdata/voice_note_long.ogg", 83667 * time.Millisecond},
	{"speechtest/testdata/tts_booking.ogg", 4378 * time.Millisecond},
	{"speechtest/testdata/tts_followup.ogg", 2850 * time.Millisecond},
}

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOggDuration(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures {
		t.Run(filepath.Base(f.path), func(t *testing.T) {
			t.Parallel()
			got, err := OggDuration(readFixture(t, f.path))
			if err != nil {
				t.Fatal(err)
			}
			if d := got - f.want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("OggDuration = %v, want %v (opusinfo)", got, f.want)
			}
		})
	}
}

func TestOggDurationRejectsDamage(t *testing.T) {
	t.Parallel()
	good := readFixture(t, "../testdata/voice_note.ogg")
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not ogg", []byte("RIFF....WAVEfmt definitely not an ogg file")},
		{"truncated", good[:len(good)-10]},
		{"flipped bit", flipped},
		{"trailing garbage", append(bytes.Clone(good), "junk"...)},
	}
	for _, tt := range tests {
		if d, err := OggDuration(tt.data); err == nil {
			t.Errorf("%s: OggDuration = %v, want an error", tt.name, d)
		}
	}
}

func TestPageCRC(t *testing.T) {
	t.Parallel()
	// Every page of a file written by libogg carries a CRC that must match.
	data := readFixture(t, "../testdata/voice_note_long.ogg")
	pages, err := readPages(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) < 80 {
		t.Errorf("read %d pages, want at least 80 for 84 s of one-second pages", len(pages))
	}
	// Ogg's CRC is CRC-32/POSIX (cksum) without its final inversion, so its
	// check value is cksum's 0x765e7680 inverted. hash/crc32's reflected IEEE
	// CRC would give 0xcbf43926.
	if got, want := pageCRC([]byte("123456789")), ^uint32(0x765e7680); got != want {
		t.Errorf("pageCRC(%q) = %08x, want %08x", "123456789", got, want)
	}
}

func TestPacketSamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		packet []byte
		want   int64
	}{
		{[]byte{0<<3 | 0}, 480},         // SILK NB 10 ms
		{[]byte{1<<3 | 0}, 960},         // SILK NB 20 ms
		{[]byte{11<<3 | 0}, 2880},       // SILK WB 60 ms
		{[]byte{13<<3 | 1}, 1920},       // hybrid 20 ms, two frames
		{[]byte{16<<3 | 0}, 120},        // CELT 2.5 ms
		{[]byte{31<<3 | 2}, 1920},       // CELT 20 ms, two frames of different size
		{[]byte{31<<3 | 3, 0x03}, 2880}, // CELT 20 ms, code 3 with three frames
	}
	for _, tt := range tests {
		got, err := packetSamples(tt.packet)
		if err != nil || got != tt.want {
			t.Errorf("packetSamples(%x) = %d, %v, want %d", tt.packet, got, err, tt.want)
		}
	}
	for _, bad := range [][]byte{nil, {31<<3 | 3}, {31<<3 | 3, 7}} {
		if _, err := packetSamples(bad); err == nil {
			t.Errorf("packetSamples(%x) succeeded, want an error", bad)
		}
	}
}

func TestWriterSplitsLargePackets(t *testing.T) {
	t.Parallel()
	// Sizes around the 255-byte lacing boundary, and one packet that needs
	// more than a page's 255 segments.
	sizes := []int{0, 1, 254, 255, 256, 510, 70000, 3}
	w := &oggWriter{serial: 7}
	var want [][]byte
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte(i + 1)}, n)
		want = append(want, p)
		w.packet(p, int64(i))
	}
	w.flush(true)

	pages, err := readPages(w.out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) < 2 {
		t.Fatalf("wrote %d pages, want the 70000-byte packet to span two", len(pages))
	}
	for i, p := range pages {
		if p.seq != uint32(i) || p.serial != 7 {
			t.Errorf("page %d: seq %d serial %d, want %d and 7", i, p.seq, p.serial, i)
		}
		if (p.flags&flagContinued != 0) != (i > 0) {
			t.Errorf("page %d: continued = %v, want %v", i, p.flags&flagContinued != 0, i > 0)
		}
	}
	got, err := readPackets(pages)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].data, want[i]) {
			t.Errorf("packet %d: %d bytes, want %d", i, len(got[i].data), len(want[i]))
		}
	}
	if g := pages[len(pages)-1].granule; g != int64(len(sizes)-1) {
		t.Errorf("last granule = %d, want %d", g, len(sizes)-1)
	}
}

func TestJoinOpus(t *testing.T) {
	t.Parallel()
	a := readFixture(t, "speechtest/testdata/tts_booking.ogg")
	b := readFixture(t, "speechtest/testdata/tts_followup.ogg")
	inputs := [][]byte{a, b, a}

	out, err := joinOpus(inputs)
	if err != nil {
		t.Fatal(err)
	}
	pages, err := readPages(out) // checks every CRC
	if err != nil {
		t.Fatal(err)
	}
	checkStructure(t, pages)

	// The packets are the first file's headers, then every file's audio.
	got, err := readPackets(pages)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	var sum time.Duration
	for i, in := range inputs {
		s, err := parseOpus(in)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = append(want, s.head, s.tags)
		}
		for _, p := range s.audio {
			want = append(want, p.data)
		}
		sum += s.duration()
	}
	if len(got) != len(want) {
		t.Fatalf("joined stream has %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].data, want[i]) {
			t.Fatalf("packet %d differs from the input's", i)
		}
	}

	// Each joint also plays the next file's pre-skip and the previous one's
	// padding: 6.5 ms and under 20 ms here.
	length, err := OggDuration(out)
	if err != nil {
		t.Fatal(err)
	}
	joints := time.Duration(len(inputs) - 1)
	if length < sum || length > sum+joints*30*time.Millisecond {
		t.Errorf("joined duration = %v, want the sum %v plus at most %v", length, sum, joints*30*time.Millisecond)
	}
	checkWithOpusTools(t, out, length)
}

func TestJoinOneFileKeepsIt(t *testing.T) {
	t.Parallel()
	// opusenc also starts a page every second, so rewriting one of its files
	// must give back the same bytes, CRCs and end trimming included.
	for _, f := range fixtures {
		in := readFixture(t, f.path)
		out, err := joinOpus([][]byte{in})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Errorf("joinOpus(%s) changed the file", filepath.Base(f.path))
		}
	}
}

// checkStructure checks what RFC 7845 asks of an Ogg Opus stream's pages.
func checkStructure(t *testing.T, pages []page) {
	t.Helper()
	last := len(pages) - 1
	prev := int64(0)
	for i, p := range pages {
		if p.seq != uint32(i) {
			t.Errorf("page %d: sequence number %d", i, p.seq)
		}
		if p.serial != pages[0].serial {
			t.Errorf("page %d: serial %x, first page has %x", i, p.serial, pages[0].serial)
		}
		if (p.flags&flagBOS != 0) != (i == 0) || (p.flags&flagEOS != 0) != (i == last) {
			t.Errorf("page %d: flags %#x, want BOS only on the first page and EOS only on the last", i, p.flags)
		}
		if p.granule == noGranule {
			continue
		}
		if p.granule < prev {
			t.Errorf("page %d: granule %d below the previous page's %d", i, p.granule, prev)
		}
		prev = p.granule
	}
	if len(pages) < 3 || len(pages[0].lacing) != 1 || pages[0].granule != 0 || pages[1].granule != 0 {
		t.Errorf("OpusHead and OpusTags must each end their own page with granule 0")
	}
	for i, p := range pages[2:] {
		if p.flags&flagContinued != 0 {
			t.Errorf("audio page %d continues a packet; want whole packets", i+2)
		}
	}
}

// checkWithOpusTools has opusinfo and opusdec, from the opus-tools package,
// read the stream: they report what a real player would stumble on. They are
// not needed locally, but CI installs them, so there they must be present.
func checkWithOpusTools(t *testing.T, ogg []byte, want time.Duration) {
	t.Helper()
	if _, err := exec.LookPath("opusinfo"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("opusinfo is missing: CI must install opus-tools")
		}
		t.Log("opusinfo not installed (apt-get install opus-tools); skipping its check")
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "joined.ogg")
	if err := os.WriteFile(path, ogg, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("opusinfo", path).CombinedOutput()
	if err != nil {
		t.Fatalf("opusinfo: %v\n%s", err, info)
	}
	if bytes.Contains(info, []byte("WARNING")) || bytes.Contains(info, []byte("ERROR")) {
		t.Errorf("opusinfo found problems:\n%s", info)
	}
	m := regexp.MustCompile(`Playback length: (\d+)m:(\d+\.\d+)s`).FindSubmatch(info)
	if m == nil {
		t.Fatalf("opusinfo printed no playback length:\n%s", info)
	}
	minutes, _ := strconv.Atoi(string(m[1]))
	seconds, _ := strconv.ParseFloat(string(m[2]), 64)
	got := time.Duration(minutes)*time.Minute + time.Duration(seconds*float64(time.Second))
	if d := got - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("opusinfo playback length = %v, OggDuration = %v", got, want)
	}
	if out, err := exec.Command("opusdec", "--quiet", path, filepath.Join(dir, "joined.wav")).CombinedOutput(); err != nil {
		t.Errorf("opusdec: %v\n%s", err, out)
	}
}
