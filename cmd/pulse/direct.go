package main

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// directWriter writes a new file past the page cache where the system allows it (O_DIRECT on
// Linux): scoring a big file then costs the kernel no copy of the output into the page cache
// and no reclaiming of it later, and does not evict what else is cached (the input, say). The
// bytes are gathered in aligned buffers that a goroutine of its own writes in whole blocks, so
// that the caller goes on while the device writes (a direct write returns when the device has
// the data); the last partial block is written with O_DIRECT off. Where the file system
// refuses O_DIRECT, it writes through the page cache.
type directWriter struct {
	f    *os.File
	buf  []byte      // being filled: aligned on directAlign, of capacity directBuffer
	free chan []byte // buffers written, to be filled again
	full chan []byte // buffers to write, in order
	done chan struct{}
	// direct is whether O_DIRECT is on; the writing goroutine owns it until done is closed.
	direct  bool
	mu      sync.Mutex
	err     error // the first write error
	stopped bool
	flushed bool // Flush wrote everything
}

const (
	directAlign   = 4096 // a multiple of every logical block size in use
	directBuffer  = 4 << 20
	directBuffers = 3 // one being filled, two being written
)

// newDirectWriter writes f from its current offset, which must be 0. Flush or stop must be
// called to end its goroutine.
func newDirectWriter(f *os.File, direct bool) *directWriter {
	w := &directWriter{
		f: f, direct: direct && setDirect(f, true) == nil,
		free: make(chan []byte, directBuffers), full: make(chan []byte, directBuffers), done: make(chan struct{}),
	}
	for range directBuffers {
		raw := make([]byte, directBuffer+directAlign)
		off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (directAlign - 1))
		w.free <- raw[off : off : off+directBuffer]
	}
	w.buf = <-w.free
	go w.run()
	return w
}

// run writes the full buffers in order; after an error it only hands them back.
func (w *directWriter) run() {
	defer close(w.done)
	for b := range w.full {
		if w.error() == nil {
			if err := w.write(b); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}
		w.free <- b[:0]
	}
}

func (w *directWriter) error() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Write gathers p; a write error of earlier bytes is returned by a later Write or by Flush.
func (w *directWriter) Write(p []byte) (int, error) {
	if w.stopped {
		return 0, errors.New("write after flush")
	}
	n := 0
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf, p, n = w.buf[:len(w.buf)+k], p[k:], n+k
		if len(w.buf) == cap(w.buf) {
			if err := w.error(); err != nil {
				return n, err
			}
			w.full <- w.buf
			w.buf = <-w.free
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

// stop ends the writing goroutine once it has written what it was given.
func (w *directWriter) stop() {
	if !w.stopped {
		w.stopped = true
		close(w.full)
		<-w.done
	}
}

// Flush writes everything and ends the writer: the whole blocks directly, the rest through
// the page cache. Writes after it fail.
func (w *directWriter) Flush() error {
	if w.flushed {
		return nil
	}
	if w.stopped {
		if err := w.error(); err != nil {
			return err
		}
		return errors.New("flush of a stopped writer")
	}
	w.stop()
	if err := w.flushTail(); err != nil {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		return err
	}
	w.flushed = true
	return nil
}

// flushTail writes what is left once the goroutine has ended.
func (w *directWriter) flushTail() error {
	if err := w.error(); err != nil {
		return err
	}
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
