//go:build unix

package sqlitedb

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner refuses a directory owned by a user other than the process's effective
// user or root: its owner could make it writable, or swap the files in it, at will.
func checkOwner(dir string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if euid := os.Geteuid(); int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Errorf("database directory %s is owned by uid %d, not by this service's user (uid %d) or root", dir, st.Uid, euid)
	}
	return nil
}
