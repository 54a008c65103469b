//go:build !unix

package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens the lock file of dir. Without flock, it does not exclude other processes.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: lock: %w", err)
	}
	return f, nil
}
