package main

import (
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
)

// Version is Pulse's release version.
const Version = "0.1.0-dev"

// commit is set at build time: go build -ldflags "-X main.commit=$(git rev-parse HEAD)".
var commit string

var gitCommit = sync.OnceValue(func() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	// `go run` does not stamp the revision: ask git, when the binary runs in a checkout.
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		rev := strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			rev += "-dirty"
		}
		return rev
	}
	return "unknown"
})
