//go:build unix

package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// lockDir takes an exclusive advisory lock on dir, held until the returned file is closed.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, pulse.Errorf(pulse.ECONFLICT, "wal: directory %s is in use by another WAL", dir)
		}
		return nil, fmt.Errorf("wal: lock %s: %w", dir, err)
	}
	return f, nil
}
