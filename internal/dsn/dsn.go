// Package dsn reads a service's --db value: the path of an SQLite file (the
// embedded default) or a postgres:// URL (the production store), and prints it
// without its secrets.
package dsn

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Engine is the database engine a --db value names.
type Engine int

// The engines.
const (
	// SQLite is an embedded database file.
	SQLite Engine = iota + 1
	// Postgres is a PostgreSQL server.
	Postgres
)

func (e Engine) String() string {
	switch e {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Engine(%d)", int(e))
}

// ErrUnsupported means the value is neither a file path nor a postgres:// URL.
var ErrUnsupported = errors.New("not an SQLite file path or a postgres:// URL")

// DB is a parsed --db value.
type DB struct {
	// Engine is the engine it names.
	Engine Engine
	// Path is the SQLite file, for SQLite.
	Path string
	// URL is the connection URL, for Postgres. It may hold a password:
	// print String instead.
	URL string
}

// String is the value with every secret replaced by "xxxxx": for logs and errors.
func (d DB) String() string {
	if d.Engine == Postgres {
		return Redact(d.URL)
	}
	return d.Path
}

// secretParams are the URL query parameters libpq and pgx read secrets from.
var secretParams = []string{"password", "sslpassword"}

// Parse reads a --db value. A postgres:// or postgresql:// URL is PostgreSQL;
// any other URL (mysql://, sqlite://, file:...) is refused, so that a URL
// mistyped or meant for another engine never becomes an SQLite file named
// after it (with its password in the file name); anything else is the path of
// an SQLite file. Errors never quote the value: it may hold a password.
func Parse(s string) (DB, error) {
	if s == "" {
		return DB{}, errors.New("database is empty")
	}
	scheme, _, isURL := strings.Cut(s, ":")
	switch strings.ToLower(scheme) {
	case "file", "postgres", "postgresql": // a URL even without "//"
	default:
		isURL = isURL && strings.Contains(s, "://")
	}
	isURL = isURL && validScheme(scheme)
	if !isURL {
		if keywordValue.MatchString(s) {
			// Never echoed: such a string may hold a password.
			return DB{}, fmt.Errorf("%w: a key=value connection string (host=... dbname=...); give PostgreSQL as a postgres://user@host/dbname URL, or a SQLite file whose name does not start with NAME=", ErrUnsupported)
		}
		return DB{Engine: SQLite, Path: s}, nil
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		u, err := url.Parse(s)
		if err != nil {
			return DB{}, fmt.Errorf("the %s URL does not parse", scheme)
		}
		if u.Opaque != "" || (u.Host == "" && u.Query().Get("host") == "") {
			return DB{}, fmt.Errorf("the %s URL names no host (want postgres://user@host/dbname)", scheme)
		}
		return DB{Engine: Postgres, URL: s}, nil
	case "file":
		return DB{}, fmt.Errorf("%w: a file: URL; give the SQLite file as a plain path", ErrUnsupported)
	default:
		return DB{}, fmt.Errorf("%w: unsupported scheme %q", ErrUnsupported, clip(scheme))
	}
}

// keywordValue matches the start of a libpq key=value connection string
// ("host=db password=..."): taken as a file name, it would put a new, empty
// SQLite database (and its password) on disk instead of connecting.
var keywordValue = regexp.MustCompile(`^\s*[A-Za-z_][A-Za-z0-9_]*\s*=`)

// validScheme is RFC 3986's scheme syntax; a Windows drive letter (C:) is a
// path, not a scheme.
func validScheme(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// Redact returns a postgres URL with its password (in the user information
// or in a password or sslpassword parameter) replaced by "xxxxx". A value
// that does not parse as a URL is replaced whole: its parts cannot be told
// apart for sure.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return "(unparsable URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	changed := false
	for _, p := range secretParams {
		if q.Has(p) {
			q.Set(p, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// clip shortens a value quoted in an error.
func clip(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}
