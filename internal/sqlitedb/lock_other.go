//go:build !unix

package sqlitedb

import "fmt"

// LockExclusive is not available outside Unix: it returns ErrLockUnsupported.
func LockExclusive(abs string) (release func() error, err error) {
	return nil, fmt.Errorf("%w: %s", ErrLockUnsupported, abs)
}
