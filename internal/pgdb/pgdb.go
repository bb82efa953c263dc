package pgdb

import (
	"context"
	"database/sql"
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

// ErrSchemaBehind means the database lacks migrations of this build and Open was
// told not to migrate (WithoutMigrations): run the migration step first.
var ErrSchemaBehind = migrate.ErrSchemaBehind

// ErrSchemaTooNew means the database was migrated by a newer build.
var ErrSchemaTooNew = migrate.ErrSchemaTooNew

// Schema is what a store brings: its migrations (files NNNN_what.sql in Dir of
// Migrations) and what its runtime role may do, table by table.
type Schema struct {
	Migrations    fs.FS
	Dir           string
	RuntimeGrants []migrate.TableGrant
}

// Option configures Open and Migrate.
type Option func(*config)

type config struct {
	maxConns  int32
	sizeSet   bool // maxConns was given (else the store's default)
	now       func() time.Time
	noMigrate bool
}

// WithMaxConns sets the size of the connection pool (the store's default if not
// given). A pool_max_conns parameter in the URL is overridden. Migrate ignores it.
func WithMaxConns(n int32) Option {
	return func(c *config) { c.maxConns, c.sizeSet = n, true }
}

// WithClock makes the migrations record their time from now (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithoutMigrations makes Open check the schema instead of migrating it: a
// database the migration step (Migrate) has not brought to this build's schema is
// refused with ErrSchemaBehind, and nothing is ever created or altered. This is
// how a service runs as its runtime role, which may not change the schema.
func WithoutMigrations() Option { return func(c *config) { c.noMigrate = true } }

// Pool is a store's pool size: its default and the least it works with.
type Pool struct {
	Default, Min int32
}

// DB is an open database: its pool, the schema version it is at, and whether
// the connected role could alter or drop the store's tables (a superuser, the
// tables' owner, or a role that may create in the schema; a service should not
// serve as one).
type DB struct {
	Pool       *pgxpool.Pool
	Version    int
	Privileged bool
}

// Open connects to the database that url names (a postgres:// URL or a key=value
// connection string; TLS, client certificates and a password come from it or
// from the standard PG* environment variables and files) with a pool of
// size.Default connections unless an option says otherwise, and applies the
// schema's migrations that the database lacks (or, with WithoutMigrations,
// checks that it has them all). A pool smaller than size.Min is refused before
// anything is done.
func Open(ctx context.Context, url string, schema Schema, size Pool, opts ...Option) (DB, error) {
	cfg := configure(opts)
	if !cfg.sizeSet {
		cfg.maxConns = size.Default
	}
	if cfg.maxConns < max(size.Min, 1) {
		return DB{}, fmt.Errorf("%d connections, want at least %d", cfg.maxConns, max(size.Min, 1))
	}
	ms, err := migrate.Load(schema.Migrations, schema.Dir)
	if err != nil {
		return DB{}, err
	}
	pool, err := connect(ctx, url, cfg.maxConns)
	if err != nil {
		return DB{}, err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	out := DB{Pool: pool}
	if cfg.noMigrate {
		out.Version, err = migrate.Check(ctx, db, migrate.Postgres{}, ms)
	} else {
		out.Version, err = migrate.Run(ctx, db, migrate.Postgres{}, ms, migrate.WithClock(cfg.now))
	}
	if err == nil {
		out.Privileged, err = migrate.SchemaPrivileged(ctx, db)
	}
	if err != nil {
		pool.Close()
		return DB{}, err
	}
	return out, nil
}

// Migrate is the migration step of a store's database, run by the role that
// owns its tables (the schema owner): it applies the migrations the database
// lacks, under the migrators' advisory lock, and then, if runtimeRole is not
// empty, grants that role the schema's RuntimeGrants and nothing else on the
// tables. It returns the schema version.
func Migrate(ctx context.Context, url, runtimeRole string, schema Schema, opts ...Option) (int, error) {
	cfg := configure(opts)
	ms, err := migrate.Load(schema.Migrations, schema.Dir)
	if err != nil {
		return 0, err
	}
	pool, err := connect(ctx, url, 2)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	version, err := migrate.Run(ctx, db, migrate.Postgres{}, ms, migrate.WithClock(cfg.now))
	if err != nil {
		return 0, err
	}
	if runtimeRole != "" {
		if err := grant(ctx, db, runtimeRole, schema.RuntimeGrants); err != nil {
			return version, err
		}
	}
	return version, nil
}

func grant(ctx context.Context, db *sql.DB, role string, grants []migrate.TableGrant) error {
	if len(grants) == 0 {
		return errors.New("grant the runtime role: the store names no runtime grants")
	}
	if err := migrate.GrantRuntime(ctx, db, role, grants); err != nil {
		return fmt.Errorf("grant the runtime role: %w", err)
	}
	return nil
}

func configure(opts []Option) config {
	cfg := config{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// connect opens a pool of n connections to url.
func connect(ctx context.Context, url string, n int32) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		// Not wrapped: pgx's message quotes the URL, redacted only on a
		// best-effort basis.
		return nil, ErrBadURL
	}
	pc.MaxConns = n
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return pool, nil
}
