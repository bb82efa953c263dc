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

// Option configures Open.
type Option func(*config)

type config struct {
	maxConns int32 // 0: the store's default
	now      func() time.Time
}

// WithMaxConns sets the size of the connection pool (the store's default if not
// given). A pool_max_conns parameter in the URL is overridden.
func WithMaxConns(n int32) Option { return func(c *config) { c.maxConns = n } }

// WithClock makes the migrations record their time from now (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// Pool is a store's pool size: its default and the least it works with.
type Pool struct {
	Default, Min int32
}

// Open connects to the database that url names (a postgres:// URL or a key=value
// connection string; TLS, client certificates and a password come from it or from
// the standard PG* environment variables and files) with a pool of size
// connections unless an option says otherwise, and applies the migrations in the
// directory dir of migrations that the database lacks. It returns the pool and the
// schema version. A pool smaller than size.Min is refused before anything is
// done.
func Open(ctx context.Context, url string, migrations fs.FS, dir string, size Pool, opts ...Option) (*pgxpool.Pool, int, error) {
	cfg := config{maxConns: size.Default, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxConns < max(size.Min, 1) {
		return nil, 0, fmt.Errorf("%d connections, want at least %d", cfg.maxConns, max(size.Min, 1))
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
	pc.MaxConns = cfg.maxConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, 0, fmt.Errorf("connect: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	version, err := migrate.Run(ctx, db, migrate.Postgres{}, ms, migrate.WithClock(cfg.now))
	if err != nil {
		pool.Close()
		return nil, 0, err
	}
	return pool, version, nil
}
