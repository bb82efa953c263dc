// Package pgdb opens a PostgreSQL database the way every store of the bank needs
// it: one pgx pool of a given size, and the store's schema migrations applied
// through internal/migrate under the migrators' advisory lock, so that replicas
// starting together migrate once.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"mtlsbank/internal/migrate"
)

// ErrBadURL means the database URL does not parse. The URL is never part of the
// message: it may hold a password.
var ErrBadURL = errors.New("the PostgreSQL database URL does not parse")

// Open connects to the database that url names (a postgres:// URL or a key=value
// connection string; TLS, client certificates and a password come from it or from
// the standard PG* environment variables and files) with a pool of maxConns
// connections (a pool_max_conns parameter in the URL is overridden), and applies
// the migrations in the directory dir of migrations that the database lacks,
// recording their time from now. It returns the pool and the schema version.
func Open(ctx context.Context, url string, maxConns int32, migrations fs.FS, dir string, now func() time.Time) (*pgxpool.Pool, int, error) {
	if maxConns < 1 {
		return nil, 0, fmt.Errorf("%d connections, want at least 1", maxConns)
	}
	ms, err := migrate.Load(migrations, dir)
	if err != nil {
		return nil, 0, err
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		// Not wrapped: pgx's message quotes the URL, redacted only on a
		// best-effort basis.
		return nil, 0, ErrBadURL
	}
	pc.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, 0, fmt.Errorf("connect: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	version, err := migrate.Run(ctx, db, migrate.Postgres{}, ms, migrate.WithClock(now))
	if err != nil {
		pool.Close()
		return nil, 0, err
	}
	return pool, version, nil
}
