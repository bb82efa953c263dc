package sqlitedb

import "errors"

// lockSuffix names the lock file of LockExclusive beside its database.
const lockSuffix = "-lock"

// Errors of LockExclusive.
var (
	// ErrLocked means another process (or another LockExclusive of this one) holds the
	// database's exclusive lock.
	ErrLocked = errors.New("database is in use by another process")
	// ErrLockUnsupported means the platform has no exclusive file lock here.
	ErrLockUnsupported = errors.New("exclusive database lock not supported on this platform")
)
