//go:build !linux

package main

import (
	"errors"
	"os"
)

// setDirect is not available here: output files are written through the page cache.
func setDirect(f *os.File, on bool) error {
	if !on {
		return nil
	}
	return errors.ErrUnsupported
}
