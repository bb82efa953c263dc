//go:build !unix

package devpki

import "os"

// lockDir only checks that path exists: without flock, concurrent certgen runs are
// not serialised on this platform.
func lockDir(path string) (func(), error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return func() {}, nil
}
