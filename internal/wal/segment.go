package wal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk format.
//
// A segment file is named by its sequence number, 20 decimal digits: "00000000000000000042.wal".
// It starts with an 8-byte header: the magic "PWAL" and the format version, a little-endian
// uint32 (1). Records follow back to back, each framed as
//
//	length  uint32, little endian: the payload length, 1..MaxPayloadBytes
//	crc     uint32, little endian: CRC-32C (Castagnoli) of the payload
//	payload length bytes
//
// There is no footer: a sealed segment looks exactly like an active one, so that the state
// after a crash is the state after a clean close, except for a possibly torn tail.
const (
	headerSize      = 8
	frameHeaderSize = 8
	formatVersion   = 1
	segmentExt      = ".wal"

	// MaxPayloadBytes is the largest payload Append accepts. A frame that claims more is
	// corrupt.
	MaxPayloadBytes = 16 << 20
)

var (
	magic      = [4]byte{'P', 'W', 'A', 'L'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// CorruptError reports a segment whose bytes are not a valid sequence of records.
type CorruptError struct {
	Segment string // file name of the segment
	Offset  int64  // byte offset of the first bad byte or frame
	Reason  string
	// Torn is true when the damage is at the very end of the file in a way that a crash in
	// the middle of a write leaves behind (a partial frame, a checksum mismatch of the last
	// frame, or trailing zero bytes).
	Torn bool
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: segment %s, offset %d: %s", e.Segment, e.Offset, e.Reason)
}

// segmentName returns the file name of segment seq.
func segmentName(seq uint64) string {
	return fmt.Sprintf("%020d%s", seq, segmentExt)
}

// parseSegmentName returns the sequence number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}

// appendHeader appends a segment header to b.
func appendHeader(b []byte) []byte {
	b = append(b, magic[:]...)
	return binary.LittleEndian.AppendUint32(b, formatVersion)
}

// appendFrame appends the framed payload p to b.
func appendFrame(b, p []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(p, castagnoli))
	return append(b, p...)
}

// segmentReader reads the records of one segment file in order. It allocates nothing per
// record: the payload returned by next is valid until the following call.
type segmentReader struct {
	f    *os.File
	r    *bufio.Reader
	name string
	size int64
	off  int64 // offset of the next frame
	buf  []byte
	hdr  [frameHeaderSize]byte
}

// openSegment opens a segment file and checks its header. A file too short to hold a header,
// or whose header is all zero bytes, is reported as a torn *CorruptError at offset 0.
func openSegment(path string) (*segmentReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &segmentReader{f: f, r: bufio.NewReaderSize(f, 256<<10), name: filepath.Base(path), size: st.Size()}
	var h [headerSize]byte
	if s.size < headerSize {
		f.Close()
		return nil, &CorruptError{Segment: s.name, Reason: fmt.Sprintf("header: got %d bytes, want %d", s.size, headerSize), Torn: true}
	}
	if _, err := io.ReadFull(s.r, h[:]); err != nil {
		f.Close()
		return nil, err
	}
	if !bytes.Equal(h[:4], magic[:]) || binary.LittleEndian.Uint32(h[4:]) != formatVersion {
		cerr := &CorruptError{Segment: s.name, Reason: fmt.Sprintf("header: got %x, want magic %q version %d", h, magic[:], formatVersion)}
		if zero, err := s.zeroFrom(0); err == nil && zero {
			cerr.Torn, cerr.Reason = true, "header: only zero bytes"
		}
		f.Close()
		return nil, cerr
	}
	s.off = headerSize
	return s, nil
}

// next returns the next payload, io.EOF at the clean end of the segment, or a *CorruptError.
func (s *segmentReader) next() ([]byte, error) {
	rest := s.size - s.off
	if rest == 0 {
		return nil, io.EOF
	}
	if rest < frameHeaderSize {
		return nil, s.corrupt(fmt.Sprintf("partial frame header: %d bytes before the end", rest), true)
	}
	if _, err := io.ReadFull(s.r, s.hdr[:]); err != nil {
		return nil, fmt.Errorf("wal: read segment %s at offset %d: %w", s.name, s.off, err)
	}
	n := int64(binary.LittleEndian.Uint32(s.hdr[:4]))
	sum := binary.LittleEndian.Uint32(s.hdr[4:])
	if n > rest-frameHeaderSize {
		return nil, s.corrupt(fmt.Sprintf("partial frame: length %d, only %d bytes before the end", n, rest-frameHeaderSize), true)
	}
	if n == 0 || n > MaxPayloadBytes {
		zero, err := s.zeroFrom(s.off)
		if err != nil {
			return nil, err
		}
		return nil, s.corrupt(fmt.Sprintf("bad frame length %d, want 1..%d", n, MaxPayloadBytes), zero)
	}
	if int64(cap(s.buf)) < n {
		s.buf = make([]byte, n)
	}
	p := s.buf[:n]
	if _, err := io.ReadFull(s.r, p); err != nil {
		return nil, fmt.Errorf("wal: read segment %s at offset %d: %w", s.name, s.off, err)
	}
	if got := crc32.Checksum(p, castagnoli); got != sum {
		last := s.off+frameHeaderSize+n == s.size
		return nil, s.corrupt(fmt.Sprintf("checksum mismatch: got %08x, frame says %08x", got, sum), last)
	}
	s.off += frameHeaderSize + n
	return p, nil
}

func (s *segmentReader) corrupt(reason string, torn bool) *CorruptError {
	return &CorruptError{Segment: s.name, Offset: s.off, Reason: reason, Torn: torn}
}

// zeroFrom reports whether every byte of the file from off to its end is zero.
func (s *segmentReader) zeroFrom(off int64) (bool, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, off, s.size-off), 64<<10)
	for {
		b, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if b != 0 {
			return false, nil
		}
	}
}

func (s *segmentReader) close() error {
	return s.f.Close()
}
