// Package sqlitedb opens an SQLite database file (pure-Go modernc.org/sqlite) the way
// every store of the bank needs it: one durable writer connection and a read-only pool.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"mtlsbank/internal/dsn"
)

// Open opens (creating it and its directory if needed) the database file at path as
// two pools. The files are private (see makePrivate): the database and its -wal and
// -shm are 0600 and a directory Open creates is 0700, whatever the umask, and a
// directory that others may write to is refused. w has exactly one connection, in WAL mode with synchronous=FULL (a commit
// is fsynced before it returns, so an acknowledged write survives a crash or a power
// loss), foreign keys on, and BEGIN IMMEDIATE (a write transaction takes the lock up
// front and never fails half-way on a lock upgrade). r has readConns query-only
// connections. The settings are read back: a driver that ignored them would silently
// lose durability. Close both pools when done.
func Open(ctx context.Context, path string, readConns int, busyTimeout time.Duration) (w, r *sql.DB, err error) {
	switch {
	case path == "":
		return nil, nil, errors.New("database path is empty")
	case readConns < 1:
		return nil, nil, fmt.Errorf("%d read connections, want at least 1", readConns)
	case busyTimeout < 0:
		return nil, nil, fmt.Errorf("negative busy timeout %v", busyTimeout)
	}
	// A URL (postgres://, file:) is not a path here: it would become a file
	// named after it, a password in the URL included.
	switch d, err := dsn.Parse(path); {
	case err != nil:
		return nil, nil, fmt.Errorf("database path: %w", err)
	case d.Engine != dsn.SQLite:
		return nil, nil, fmt.Errorf("database %s is a %s URL, not the path of an SQLite file", d, d.Engine)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("database path %s: %w", path, err)
	}
	if err := makePrivate(abs); err != nil {
		return nil, nil, err
	}
	busy := strconv.FormatInt(busyTimeout.Milliseconds(), 10)
	w, err = sql.Open("sqlite", fileURI(abs, url.Values{
		"_busy_timeout": {busy},
		"_foreign_keys": {"1"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		// Savepoint journals stay in memory instead of a temporary file.
		"_pragma": {"temp_store(MEMORY)", "cache_size(-16384)"},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", abs, err)
	}
	pin(w, 1)
	if err := checkPragmas(ctx, w); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("%s: %w", abs, err)
	}
	r, err = sql.Open("sqlite", fileURI(abs, url.Values{
		"_busy_timeout": {busy},
		"_foreign_keys": {"1"},
		"_query_only":   {"1"},
		"_pragma":       {"cache_size(-8192)"},
	}))
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("open %s for reading: %w", abs, err)
	}
	pin(r, readConns)
	return w, r, nil
}

// pin keeps n connections open for good: each SQLite connection holds its page cache
// and prepared statements.
func pin(db *sql.DB, n int) {
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
}

// fileURI is a file: URI, so that any path, also one with '?' or '#', names the file it says.
func fileURI(abs string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}
	return u.String()
}

// checkPragmas proves that the connection settings took effect.
func checkPragmas(ctx context.Context, db *sql.DB) error {
	for _, c := range []struct{ pragma, want, hint string }{
		{"journal_mode", "wal", " (does the file system support WAL?)"},
		{"synchronous", "2", " (FULL)"},
		{"foreign_keys", "1", ""},
	} {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			return fmt.Errorf("read pragma %s: %w", c.pragma, err)
		}
		if !strings.EqualFold(got, c.want) {
			return fmt.Errorf("pragma %s is %q, want %q%s", c.pragma, got, c.want, c.hint)
		}
	}
	return nil
}
