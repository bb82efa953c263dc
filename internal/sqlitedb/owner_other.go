//go:build !unix

package sqlitedb

import "io/fs"

// checkOwner has no owner to check outside Unix.
func checkOwner(string, fs.FileInfo) error { return nil }
