package speech

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// This file holds the small part of the Ogg container (RFC 3533) and of the
// Ogg encapsulation of Opus (RFC 7845) that the package needs: reading pages
// and packets, measuring a stream's duration, and joining several Opus streams
// into one. Joining is what lets a reply longer than one Text-to-Speech
// request still arrive as a single voice note: two Ogg files written one after
// the other are a chained stream, which WhatsApp does not play as one note.

// opusRate is the rate of Opus granule positions, whatever the input rate was.
const opusRate = 48000

// noGranule is the granule position of a page on which no packet ends.
const noGranule = -1

// Ogg page header flags.
const (
	flagContinued = 0x01 // the page starts with the rest of a packet
	flagBOS       = 0x02 // first page of a logical stream
	flagEOS       = 0x04 // last page of a logical stream
)

const pageHeaderLen = 27

// page is one Ogg page, parsed.
type page struct {
	flags   byte
	granule int64
	serial  uint32
	seq     uint32
	lacing  []byte // segment table
	body    []byte
}

// readPages parses every page of data and checks each one's CRC.
func readPages(data []byte) ([]page, error) {
	var pages []page
	for off := 0; off < len(data); {
		p, n, err := readPage(data[off:])
		if err != nil {
			return nil, fmt.Errorf("ogg page at byte %d: %w", off, err)
		}
		pages = append(pages, p)
		off += n
	}
	if len(pages) == 0 {
		return nil, errors.New("ogg: no pages")
	}
	return pages, nil
}

// readPage parses the page at the start of b and returns it with its length.
func readPage(b []byte) (page, int, error) {
	if len(b) < pageHeaderLen || !bytes.HasPrefix(b, []byte("OggS")) {
		return page{}, 0, errors.New("no capture pattern")
	}
	if b[4] != 0 {
		return page{}, 0, fmt.Errorf("unknown version %d", b[4])
	}
	nseg := int(b[26])
	if len(b) < pageHeaderLen+nseg {
		return page{}, 0, errors.New("truncated segment table")
	}
	lacing := b[pageHeaderLen : pageHeaderLen+nseg]
	size := pageHeaderLen + nseg
	for _, l := range lacing {
		size += int(l)
	}
	if len(b) < size {
		return page{}, 0, errors.New("truncated body")
	}
	want := binary.LittleEndian.Uint32(b[22:26])
	if got := pageCRC(b[:size]); got != want {
		return page{}, 0, fmt.Errorf("CRC %08x, header says %08x", got, want)
	}
	return page{
		flags:   b[5],
		granule: int64(binary.LittleEndian.Uint64(b[6:14])),
		serial:  binary.LittleEndian.Uint32(b[14:18]),
		seq:     binary.LittleEndian.Uint32(b[18:22]),
		lacing:  lacing,
		body:    b[pageHeaderLen+nseg : size],
	}, size, nil
}

// packet is one Opus packet with the granule position of the page it ends on
// (noGranule when it is not the last packet to end there).
type packet struct {
	data    []byte
	granule int64
}

// readPackets reassembles the packets of a single logical stream.
func readPackets(pages []page) ([]packet, error) {
	var (
		packets []packet
		partial []byte
	)
	serial := pages[0].serial
	for i, p := range pages {
		if p.serial != serial {
			return nil, errors.New("ogg: more than one logical stream")
		}
		if p.flags&flagContinued != 0 && partial == nil {
			return nil, fmt.Errorf("ogg: page %d continues a packet that never started", i)
		}
		start := len(packets)
		body := p.body
		for _, l := range p.lacing {
			partial = append(partial, body[:l]...)
			body = body[l:]
			if l < 255 {
				packets = append(packets, packet{data: partial, granule: noGranule})
				partial = nil
			}
		}
		if len(packets) > start {
			packets[len(packets)-1].granule = p.granule
		}
	}
	if len(partial) > 0 {
		return nil, errors.New("ogg: stream ends inside a packet")
	}
	return packets, nil
}

// opusStream is an Ogg Opus stream split into its parts.
type opusStream struct {
	head, tags []byte
	audio      []packet
	serial     uint32
	preSkip    int64
	channels   byte
	samples    int64 // decoded samples in all audio packets, at 48 kHz
	endGranule int64 // granule position of the last page
}

// parseOpus reads an Ogg Opus file: identification header, comment header,
// then audio packets.
func parseOpus(data []byte) (*opusStream, error) {
	pages, err := readPages(data)
	if err != nil {
		return nil, err
	}
	packets, err := readPackets(pages)
	if err != nil {
		return nil, err
	}
	if len(packets) < 2 {
		return nil, errors.New("opus: missing headers")
	}
	head := packets[0].data
	if len(head) < 19 || !bytes.HasPrefix(head, []byte("OpusHead")) {
		return nil, errors.New("opus: first packet is not OpusHead")
	}
	if !bytes.HasPrefix(packets[1].data, []byte("OpusTags")) {
		return nil, errors.New("opus: second packet is not OpusTags")
	}
	s := &opusStream{
		head:       head,
		tags:       packets[1].data,
		audio:      packets[2:],
		serial:     pages[0].serial,
		channels:   head[9],
		preSkip:    int64(binary.LittleEndian.Uint16(head[10:12])),
		endGranule: lastGranule(pages),
	}
	for _, p := range s.audio {
		n, err := packetSamples(p.data)
		if err != nil {
			return nil, err
		}
		s.samples += n
	}
	return s, nil
}

// lastGranule is the granule position of the last page that has one.
func lastGranule(pages []page) int64 {
	for i := len(pages) - 1; i >= 0; i-- {
		if pages[i].granule != noGranule {
			return pages[i].granule
		}
	}
	return 0
}

// duration is the playback length: the end granule minus the pre-skip.
func (s *opusStream) duration() time.Duration {
	return granuleDuration(s.endGranule - s.preSkip)
}

func granuleDuration(g int64) time.Duration {
	if g < 0 {
		return 0
	}
	return time.Duration(g) * time.Second / opusRate
}

// OggDuration returns the playback length of an Ogg Opus file, computed as
// RFC 7845 defines it: the last page's granule position minus the pre-skip of
// the OpusHead, in 48 kHz samples. It checks every page's CRC on the way.
func OggDuration(data []byte) (time.Duration, error) {
	s, err := parseOpus(data)
	if err != nil {
		return 0, fmt.Errorf("ogg duration: %w", err)
	}
	return s.duration(), nil
}

// packetSamples is the number of 48 kHz samples an Opus packet decodes to,
// from its TOC byte and frame count (RFC 6716, section 3.1).
func packetSamples(p []byte) (int64, error) {
	if len(p) == 0 {
		return 0, errors.New("opus: empty packet")
	}
	config := p[0] >> 3
	var frame int64
	switch {
	case config < 12: // SILK: 10, 20, 40 or 60 ms
		frame = []int64{480, 960, 1920, 2880}[config%4]
	case config < 16: // hybrid: 10 or 20 ms
		frame = []int64{480, 960}[config%2]
	default: // CELT: 2.5, 5, 10 or 20 ms
		frame = []int64{120, 240, 480, 960}[config%4]
	}
	var frames int64
	switch p[0] & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	default:
		if len(p) < 2 {
			return 0, errors.New("opus: code 3 packet without frame count")
		}
		frames = int64(p[1] & 0x3f)
	}
	if frames*frame > 5760 {
		return 0, errors.New("opus: packet longer than 120 ms")
	}
	return frames * frame, nil
}

// pageTarget is how much audio one output page holds, about one second as
// opusenc writes it, so a seek or a lost page costs little.
const pageTarget = opusRate

// joinOpus joins Ogg Opus files into one logical stream. It keeps the first
// file's OpusHead and OpusTags and appends the audio packets of every file in
// order, renumbering granule positions so they run on without a gap. Each
// file's pre-skip and end padding are decoded and played in the middle of the
// result (a few milliseconds of silence at each joint), because dropping them
// would need re-encoding; only the last file's end trimming is kept. All
// files must have the same channel count.
func joinOpus(files [][]byte) ([]byte, error) {
	if len(files) == 0 {
		return nil, errors.New("join opus: no input")
	}
	streams := make([]*opusStream, len(files))
	for i, f := range files {
		s, err := parseOpus(f)
		if err != nil {
			return nil, fmt.Errorf("join opus: file %d: %w", i, err)
		}
		if i > 0 && s.channels != streams[0].channels {
			return nil, fmt.Errorf("join opus: file %d has %d channels, file 0 has %d", i, s.channels, streams[0].channels)
		}
		streams[i] = s
	}

	// The last file's end trim says how many samples of its final packets are
	// padding; the result keeps that trim and plays everything before it.
	var total int64
	for _, s := range streams {
		total += s.samples
	}
	last := streams[len(streams)-1]
	trim := min(max(last.samples-last.endGranule, 0), last.samples)

	w := &oggWriter{serial: streams[0].serial}
	w.packet(streams[0].head, 0)
	w.flush(false)
	w.packet(streams[0].tags, 0)
	w.flush(false)

	var granule, pageSamples int64
	for _, s := range streams {
		for _, p := range s.audio {
			n, _ := packetSamples(p.data) // parseOpus checked every packet
			// RFC 7845 forbids an end granule below the previous page's, so
			// the final page must hold more samples than the trim removes.
			if pageSamples >= pageTarget && total-granule > trim {
				w.flush(false)
				pageSamples = 0
			}
			granule += n
			pageSamples += n
			w.packet(p.data, granule)
		}
	}
	w.granule = total - trim
	w.flush(true)
	return w.out.Bytes(), nil
}

// oggWriter writes the pages of one logical stream.
type oggWriter struct {
	out     bytes.Buffer
	serial  uint32
	seq     uint32
	lacing  []byte
	body    []byte
	granule int64 // of the last packet ended on the pending page
	ended   bool  // a packet ends on the pending page
	cont    bool  // the pending page starts inside a packet
}

// packet adds a packet ending at granule position granule, starting new pages
// when a segment table fills up.
func (w *oggWriter) packet(data []byte, granule int64) {
	for rest := data; ; {
		if len(w.lacing) == 255 {
			w.flush(false)
			w.cont = true
		}
		n := min(len(rest), 255)
		w.lacing = append(w.lacing, byte(n))
		w.body = append(w.body, rest[:n]...)
		rest = rest[n:]
		if n < 255 {
			break
		}
	}
	w.granule = granule
	w.ended = true
}

// flush writes the pending page, if it has anything or is the last one.
func (w *oggWriter) flush(eos bool) {
	if len(w.lacing) == 0 && !eos {
		return
	}
	var flags byte
	if w.cont {
		flags |= flagContinued
	}
	if w.seq == 0 {
		flags |= flagBOS
	}
	if eos {
		flags |= flagEOS
	}
	granule := int64(noGranule)
	if w.ended {
		granule = w.granule
	}
	h := make([]byte, pageHeaderLen, pageHeaderLen+len(w.lacing)+len(w.body))
	copy(h, "OggS")
	h[5] = flags
	binary.LittleEndian.PutUint64(h[6:14], uint64(granule))
	binary.LittleEndian.PutUint32(h[14:18], w.serial)
	binary.LittleEndian.PutUint32(h[18:22], w.seq)
	h[26] = byte(len(w.lacing))
	h = append(h, w.lacing...)
	h = append(h, w.body...)
	binary.LittleEndian.PutUint32(h[22:26], pageCRC(h))
	w.out.Write(h)

	w.seq++
	w.lacing, w.body = w.lacing[:0], w.body[:0]
	w.ended, w.cont = false, false
}

// crcTable is the CRC-32 that Ogg specifies: polynomial 0x04C11DB7, not
// reflected, initial value 0 and no final XOR, unlike hash/crc32's IEEE one.
var crcTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// pageCRC is the checksum of a whole page, computed with the CRC field as zero.
func pageCRC(p []byte) uint32 {
	var crc uint32
	for i, b := range p {
		if i >= 22 && i < 26 {
			b = 0
		}
		crc = crc<<8 ^ crcTable[byte(crc>>24)^b]
	}
	return crc
}
