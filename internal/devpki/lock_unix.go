//go:build unix

package devpki

import (
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive flock on the directory path, waiting for another certgen
// (say, the `certgen crl` loop of `make run`) to finish, so that two runs never
// interleave their reads and writes of the state. The returned func releases it.
func lockDir(path string) (func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
