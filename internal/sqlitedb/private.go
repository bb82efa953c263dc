package sqlitedb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Modes of what Open creates. Chmod sets them exactly: the umask only applies to
// creation, and a umask of 0 (or one that removes the owner's write bit) must change
// nothing.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// companions are the files SQLite keeps next to a database. It creates them with the
// database file's own permission bits (and fchmods them to those bits whatever the
// umask), so a 0600 database gets 0600 companions; one left by an earlier run with
// looser bits is tightened here.
var companions = []string{"-wal", "-shm", "-journal"}

// makePrivate prepares the database file abs so that only the service's user can read
// or change the bank's data:
//
//   - Missing directories are created 0700.
//   - An existing directory keeps its mode (an operator may make it 0755 or 0750 for
//     monitoring; the names in it reveal nothing), but one that the group or others
//     may write to is refused, sticky bit or not, and so is one owned by another user
//     than the service's or root. Whoever can write there can replace the database or
//     plant a -wal or -shm that SQLite trusts before the service opens it, that is
//     forge the ledger; the rule is OpenSSH's StrictModes. Refusing, rather than
//     warning, is the bank's choice: a warning does not protect the money, and the fix
//     (chmod go-w) takes one command.
//   - The database file is created 0600 (before SQLite creates it 0644), and it and
//     its companions, if they exist, are set to 0600.
//
// Parents above the database's directory are not checked.
func makePrivate(abs string) error {
	dir := filepath.Dir(abs)
	if err := makeDirs(dir); err != nil {
		return err
	}
	if err := checkDir(dir); err != nil {
		return err
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("create database file %s: %w", abs, err)
	}
	err = privateFile(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("database file %s: %w", abs, cerr)
	}
	if err != nil {
		return err
	}
	for _, suffix := range companions {
		f, err := os.OpenFile(abs+suffix, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("database file %s: %w", abs+suffix, err)
		}
		err = privateFile(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// privateFile makes the open file f a 0600 regular file.
func privateFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("database file %s: %w", f.Name(), err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("database file %s is not a regular file (%v)", f.Name(), fi.Mode().Type())
	}
	if fi.Mode().Perm() == fileMode {
		return nil
	}
	if err := f.Chmod(fileMode); err != nil {
		return fmt.Errorf("make database file %s private (mode %04o): %w", f.Name(), fileMode, err)
	}
	return nil
}

// makeDirs creates dir and its missing parents, each 0700.
func makeDirs(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("database directory %s is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("database directory %s: %w", dir, err)
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := makeDirs(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create database directory %s: %w", dir, err)
	} else if err != nil {
		return nil // created by someone else meanwhile: checkDir judges it
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return fmt.Errorf("create database directory %s: %w", dir, err)
	}
	return nil
}

// checkDir refuses a directory that another user could write to.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("database directory %s: %w", dir, err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("database directory %s is writable by group or others (mode %v): another user could replace the database; "+
			"run chmod go-w %s, or choose a private directory", dir, fi.Mode(), dir)
	}
	return checkOwner(dir, fi)
}
