// Package pgcluster starts and stops a private PostgreSQL cluster (initdb and
// pg_ctl from the server binaries, as the postgres user through runuser when run
// as root, on a free 127.0.0.1 port), optionally with TLS from a CA of its own:
// the throwaway server of the tests (internal/pgtest) and of make run-pg.
package pgcluster
