package dsn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Errors of Check.
var (
	// ErrPasswordInURL means the URL holds a password (in its user information,
	// or a password or sslpassword parameter).
	ErrPasswordInURL = errors.New("the database URL holds a password")
	// ErrServerNotVerified means the connection to a server that is not on this
	// machine would not check the server's certificate and name against a CA of
	// the operator's choosing.
	ErrServerNotVerified = errors.New("the database server would not be authenticated")
	// ErrPassfileOpen means the password file can be read by other users.
	ErrPassfileOpen = errors.New("the password file can be read by other users")
)

// Check applies the rules a service holds its PostgreSQL connection to, as a
// bank's security team would have them; it does nothing for SQLite.
//
//   - No password in the URL, whose text ends up in the process list, shell
//     histories, unit files and configuration dumps: the password comes from a
//     password file (PGPASSFILE, the passfile parameter, or ~/.pgpass, in
//     libpq's format) or PGPASSWORD, or there is none and the client presents
//     a certificate (sslcert, sslkey).
//   - A server that is not on this machine (a host other than a loopback
//     address, localhost or a Unix socket) is reached with
//     sslmode=verify-full and an sslrootcert file: TLS whose certificate must
//     chain to that CA and name the host. sslmode=require or verify-ca, or
//     verify-full against the system roots (sslrootcert=system, or no
//     sslrootcert), would let anyone with a certificate from some CA, or none,
//     stand in for the database.
//   - The password file, if there is one, is readable by its owner only (libpq
//     ignores one that is not; we refuse to start instead of failing later).
//
// The connection settings are read as pgx reads them, the PG* environment
// included. Errors never quote the URL.
func (d DB) Check() error {
	if d.Engine != Postgres {
		return nil
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		return errors.New("the URL does not parse")
	}
	if _, has := u.User.Password(); has || u.Query().Has("password") || u.Query().Has("sslpassword") {
		return fmt.Errorf("%w: put it in a password file (PGPASSFILE, mode 0600) or use a client certificate (sslcert and sslkey); "+
			"a URL is shown in the process list, shell histories and configuration dumps", ErrPasswordInURL)
	}
	cfg, err := pgconn.ParseConfig(d.URL)
	if err != nil {
		// pgx's message may quote parts of the URL.
		return errors.New("the URL is not a valid PostgreSQL connection string (check its parameters, and that its sslrootcert, sslcert and sslkey files exist)")
	}
	if rootCert(u) == "system" {
		return fmt.Errorf("%w: sslrootcert=system trusts every public CA; give the file of the CA that issued the server's certificate", ErrServerNotVerified)
	}
	for _, fc := range append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...) {
		if local(fc.Host) {
			continue
		}
		switch tc := fc.TLSConfig; {
		case tc == nil:
			return fmt.Errorf("%w: host %s is reached without TLS; use sslmode=verify-full with sslrootcert=CAFILE", ErrServerNotVerified, fc.Host)
		case tc.InsecureSkipVerify:
			return fmt.Errorf("%w: sslmode %s does not check that the certificate names host %s (or does not check it at all); use sslmode=verify-full with sslrootcert=CAFILE",
				ErrServerNotVerified, sslMode(u), fc.Host)
		case tc.RootCAs == nil:
			return fmt.Errorf("%w: no sslrootcert: the server's certificate would be checked against the system roots; give sslrootcert=CAFILE", ErrServerNotVerified)
		}
	}
	return checkPassfile(u)
}

// local reports whether host is on this machine: a Unix socket directory, a
// loopback address or localhost.
func local(host string) bool {
	if strings.HasPrefix(host, "/") || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sslMode is the sslmode the URL or PGSSLMODE asks for, or pgx's default.
func sslMode(u *url.URL) string {
	if m := u.Query().Get("sslmode"); m != "" {
		return m
	}
	if m := os.Getenv("PGSSLMODE"); m != "" {
		return m
	}
	return "prefer (the default)"
}

// rootCert is the sslrootcert the URL or PGSSLROOTCERT gives.
func rootCert(u *url.URL) string {
	if r := u.Query().Get("sslrootcert"); r != "" {
		return r
	}
	return os.Getenv("PGSSLROOTCERT")
}

// checkPassfile refuses a password file that others may read: the passfile
// parameter, else PGPASSFILE, else ~/.pgpass, as pgx looks for it.
func checkPassfile(u *url.URL) error {
	path := u.Query().Get("passfile")
	if path == "" {
		path = os.Getenv("PGPASSFILE")
	}
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		path = filepath.Join(home, ".pgpass")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil // no password file: none is read
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; chmod 0600 it", ErrPassfileOpen, path, fi.Mode().Perm())
	}
	return nil
}
