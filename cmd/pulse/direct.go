package main

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// directWriter writes a new file past the page cache where the system allows it (O_DIRECT on
// Linux): scoring a big file then costs the kernel no copy of the output into the page cache
// and no reclaiming of it later, and does not evict what else is cached (the input, say). The
// writes go through an aligned buffer in whole blocks; the last partial block is written with
// O_DIRECT off. Where the file system refuses O_DIRECT, it writes through the page cache.
type directWriter struct {
	f      *os.File
	buf    []byte // aligned on directAlign, of capacity directBuffer
	direct bool
}

const (
	directAlign  = 4096 // a multiple of every logical block size in use
	directBuffer = 8 << 20
)

// newDirectWriter writes f from its current offset, which must be 0.
func newDirectWriter(f *os.File, direct bool) *directWriter {
	w := &directWriter{f: f, direct: direct && setDirect(f, true) == nil}
	raw := make([]byte, directBuffer+directAlign)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (directAlign - 1))
	w.buf = raw[off : off : off+directBuffer]
	return w
}

func (w *directWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf, p, n = w.buf[:len(w.buf)+k], p[k:], n+k
		if len(w.buf) == cap(w.buf) {
			if err := w.write(w.buf); err != nil {
				return n, err
			}
			w.buf = w.buf[:0]
		}
	}
	return n, nil
}

// write writes b, a whole number of blocks unless direct is off.
func (w *directWriter) write(b []byte) error {
	if !w.direct {
		_, err := w.f.Write(b)
		return err
	}
	n, err := w.f.Write(b)
	if err != nil && n == 0 && errors.Is(err, syscall.EINVAL) {
		// The file system took the flag but not the writes: write through the page cache.
		if err := w.stopDirect(); err != nil {
			return err
		}
		_, err = w.f.Write(b)
	}
	return err
}

func (w *directWriter) stopDirect() error {
	w.direct = false
	return setDirect(w.f, false)
}

// Flush writes what is buffered: the whole blocks directly, the rest through the page cache
// (O_DIRECT is off from then on).
func (w *directWriter) Flush() error {
	done := 0
	if w.direct {
		if whole := len(w.buf) &^ (directAlign - 1); whole > 0 {
			if err := w.write(w.buf[:whole]); err != nil {
				return err
			}
			done = whole
		}
	}
	if w.direct {
		if err := w.stopDirect(); err != nil {
			return err
		}
	}
	if done < len(w.buf) {
		if _, err := w.f.Write(w.buf[done:]); err != nil {
			return err
		}
	}
	w.buf = w.buf[:0]
	return nil
}
