//go:build unix

package sqlitedb

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// LockExclusive makes this process the only one that may open the database file abs with
// LockExclusive: it takes an exclusive lock (flock) on abs+"-lock", a file of its own
// created 0600 beside the database, and holds it until release (or the process's end:
// the kernel drops the lock of a killed process). A second process, or a second
// LockExclusive in this one, gets ErrLocked. Call it before opening the database. The
// lock is on a file of its own because SQLite's own locks on the database file are POSIX
// locks, which closing any other descriptor of that file in the process would drop.
func LockExclusive(abs string) (release func() error, err error) {
	path := abs + lockSuffix
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := privateFile(f); err != nil {
		f.Close()
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (lock file %s)", ErrLocked, abs, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f.Close, nil // closing the descriptor releases the lock
}
