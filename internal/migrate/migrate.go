// Package migrate is the one migration mechanism of the bank's stores, on SQLite
// and PostgreSQL alike: versioned SQL files, each recorded with the SHA-256 of its
// text in one bookkeeping table, applied in one transaction under a lock that
// serialises every migrator of the database.
package migrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"time"
)

// The runner speaks plain database/sql (pgx's stdlib adapter for PostgreSQL);
// what differs between engines (the lock, the placeholders, how to ask whether a
// table exists) is a Dialect.

// HistoryTable is the bookkeeping table: one row per applied migration.
const HistoryTable = "schema_history"

// Errors of Run.
var (
	// ErrSchemaTooNew means the database was migrated by a newer build than this one.
	ErrSchemaTooNew = errors.New("database schema is newer than this build")
	// ErrMigrationChanged means a migration already applied to the database differs
	// from the one of the same version in this build.
	ErrMigrationChanged = errors.New("an applied migration was changed")
	// ErrMigrationFiles means the embedded migration files are malformed (a build bug).
	ErrMigrationFiles = errors.New("malformed migration files")
	// ErrSchemaBehind means the database lacks migrations of this build (Check):
	// the migration step has not run since the upgrade.
	ErrSchemaBehind = errors.New("database schema is older than this build")
)

// Migration is one schema version.
type Migration struct {
	// Version is the migration's number, from 1 without gaps.
	Version int
	// Name is the file name, NNNN_what.sql.
	Name string
	// SQL is the file's text, run as one script.
	SQL string
	// Checksum is the lower-case hex SHA-256 of SQL.
	Checksum string
}

// migrationName is NNNN_what.sql: four digits, an underscore, a lower-case name.
var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// Load reads the files dir/*.sql of fsys (an embed.FS), named
// NNNN_what.sql and numbered from 0001 without gaps. A released file is never
// edited: Run refuses a database whose applied migrations differ from these.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("list migrations in %s: %w", dir, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no %s/*.sql", ErrMigrationFiles, dir)
	}
	ms := make([]Migration, 0, len(names))
	for i, name := range names { // fs.Glob sorts
		base := path.Base(name)
		m := migrationName.FindStringSubmatch(base)
		if m == nil {
			return nil, fmt.Errorf("%w: %s is not named NNNN_what.sql", ErrMigrationFiles, base)
		}
		if v, _ := strconv.Atoi(m[1]); v != i+1 {
			return nil, fmt.Errorf("%w: %s, want version %04d", ErrMigrationFiles, base, i+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: i + 1, Name: base, SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	return ms, nil
}

// Dialect is what Run needs to know about a database engine: SQLite (the files
// sqlitedb.Open opens) or Postgres.
type Dialect interface {
	// Lock runs first in the migration transaction and returns once the
	// transaction holds the lock that serialises the migrators of the database;
	// the lock is released when the transaction ends.
	Lock(ctx context.Context, tx *sql.Tx) error
	// Placeholder is the n-th (from 1) bind parameter of a statement.
	Placeholder(n int) string
	// TableExists reports whether the table exists.
	TableExists(ctx context.Context, tx *sql.Tx, table string) (bool, error)
}

// SQLite is the Dialect of the databases sqlitedb.Open opens.
type SQLite struct{}

var _ Dialect = SQLite{}

// Lock does nothing: the writer pool of sqlitedb.Open begins every transaction with
// BEGIN IMMEDIATE, which takes the database's write lock (waiting up to the busy
// timeout for another process to release it) before the transaction reads
// anything, so two migrators never both see the old version.
func (SQLite) Lock(context.Context, *sql.Tx) error { return nil }

// Placeholder is "?" whatever n.
func (SQLite) Placeholder(int) string { return "?" }

// TableExists looks the table up in sqlite_master.
func (SQLite) TableExists(ctx context.Context, tx *sql.Tx, table string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n)
	return n > 0, err
}

// Postgres is the Dialect of PostgreSQL, through pgx's database/sql adapter.
type Postgres struct{}

var _ Dialect = Postgres{}

// advisoryLockKey is the pg_advisory_xact_lock key of the migrators. Advisory
// locks are per database, so two services with their own databases do not wait
// for each other.
const advisoryLockKey int64 = 0x6d74_6c73_6d69_6772 // "mtlsmigr"

// Lock takes a transaction-scoped advisory lock: the second of two replicas
// starting together waits here until the first commits, then reads the history
// the first wrote and applies nothing twice.
func (Postgres) Lock(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, advisoryLockKey)
	return err
}

// Placeholder is $n.
func (Postgres) Placeholder(n int) string { return "$" + strconv.Itoa(n) }

// TableExists asks to_regclass, which resolves the name on the search path as
// an unqualified table name in a statement would.
func (Postgres) TableExists(ctx context.Context, tx *sql.Tx, table string) (bool, error) {
	var exists bool
	err := tx.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists)
	return exists, err
}

// Option configures Run.
type Option func(*migrateConfig)

type migrateConfig struct {
	now    func() time.Time
	legacy string
}

// WithClock makes Run stamp applied migrations with now (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *migrateConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// legacyName is what a legacy table name may be: it is spliced into SQL.
var legacyName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// WithLegacyTable names the bookkeeping table of the runner this one replaced: a
// table with an integer column "version", one row per applied version from 1 without
// gaps. A database that has it and no history yet is adopted: its versions are
// recorded in HistoryTable with this build's checksums (the old runner kept none, so
// they are trusted as the files that shipped), and the legacy table is dropped in the
// same transaction, so that an older build opening the file fails on its first
// migration ("table already exists") instead of running on a schema it does not know.
func WithLegacyTable(table string) Option {
	return func(c *migrateConfig) { c.legacy = table }
}

// Run brings the database to the newest of ms (from Load) in one
// transaction under the dialect's lock, so a failure leaves the previous version
// intact and concurrent migrators (processes starting together) apply each migration
// once. It refuses a database migrated by a newer build (ErrSchemaTooNew) and one
// whose applied migrations differ from ms (ErrMigrationChanged). It returns the
// schema version the database is at.
func Run(ctx context.Context, db *sql.DB, d Dialect, ms []Migration, opts ...Option) (version int, err error) {
	cfg := migrateConfig{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			return 0, fmt.Errorf("%w: migration %s has version %d, want %d", ErrMigrationFiles, m.Name, m.Version, i+1)
		}
	}
	if cfg.legacy != "" && (!legacyName.MatchString(cfg.legacy) || cfg.legacy == HistoryTable) {
		return 0, fmt.Errorf("legacy table name %q is not a plain identifier", cfg.legacy)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := d.Lock(ctx, tx); err != nil {
		return 0, fmt.Errorf("lock for migration: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+HistoryTable+` (
		version    BIGINT NOT NULL PRIMARY KEY,
		name       TEXT   NOT NULL,
		checksum   TEXT   NOT NULL,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return 0, fmt.Errorf("create %s: %w", HistoryTable, err)
	}
	applied, err := readHistory(ctx, tx)
	if err != nil {
		return 0, err
	}
	now := cfg.now().UnixMicro()
	if len(applied) == 0 && cfg.legacy != "" {
		if applied, err = adoptLegacy(ctx, tx, d, cfg.legacy, ms, now); err != nil {
			return 0, err
		}
	}
	if err := compare(applied, ms); err != nil {
		return 0, err
	}
	insert := fmt.Sprintf(`INSERT INTO %s (version, name, checksum, applied_at) VALUES (%s, %s, %s, %s)`,
		HistoryTable, d.Placeholder(1), d.Placeholder(2), d.Placeholder(3), d.Placeholder(4))
	for _, m := range ms[len(applied):] {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return 0, fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, insert, m.Version, m.Name, m.Checksum, now); err != nil {
			return 0, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit migrations: %w", err)
	}
	return len(ms), nil
}

// compare checks that the applied migrations are a prefix of ms, checksums
// included.
func compare(applied, ms []Migration) error {
	if len(applied) > len(ms) {
		last := applied[len(applied)-1]
		return fmt.Errorf("%w: the database is at version %d (%s), this build knows %d",
			ErrSchemaTooNew, last.Version, last.Name, len(ms))
	}
	for i, a := range applied {
		m := ms[i]
		if a.Version != m.Version {
			return fmt.Errorf("%s has version %d where %d was expected: the history has a gap", HistoryTable, a.Version, m.Version)
		}
		if a.Checksum != m.Checksum {
			return fmt.Errorf("%w: %s was applied as %s (sha256 %s), this build has %s (sha256 %s); "+
				"a released migration must never be edited, add a new one instead",
				ErrMigrationChanged, HistoryTable, a.Name, short(a.Checksum), m.Name, short(m.Checksum))
		}
	}
	return nil
}

// Check verifies, changing nothing and taking no lock, that the database is at
// the newest of ms with this build's checksums: what a service that does not
// migrate (its role may not change the schema) checks at start. It returns the
// version, or ErrSchemaBehind (the migration step has not run yet),
// ErrSchemaTooNew or ErrMigrationChanged.
func Check(ctx context.Context, db *sql.DB, d Dialect, ms []Migration) (int, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("begin schema check: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	exists, err := d.TableExists(ctx, tx, HistoryTable)
	if err != nil {
		return 0, fmt.Errorf("look for %s: %w", HistoryTable, err)
	}
	var applied []Migration
	if exists {
		if applied, err = readHistory(ctx, tx); err != nil {
			return 0, err
		}
	}
	if err := compare(applied, ms); err != nil {
		return 0, err
	}
	if len(applied) < len(ms) {
		return len(applied), fmt.Errorf("%w: the database is at version %d, this build needs %d (%s)",
			ErrSchemaBehind, len(applied), len(ms), ms[len(ms)-1].Name)
	}
	return len(applied), nil
}

// readHistory returns the applied migrations in version order.
func readHistory(ctx context.Context, tx *sql.Tx) ([]Migration, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version, name, checksum FROM `+HistoryTable+` ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", HistoryTable, err)
	}
	defer rows.Close()
	var out []Migration
	for rows.Next() {
		var m Migration
		if err := rows.Scan(&m.Version, &m.Name, &m.Checksum); err != nil {
			return nil, fmt.Errorf("read %s: %w", HistoryTable, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", HistoryTable, err)
	}
	return out, nil
}

// adoptLegacy moves the versions of the legacy bookkeeping table into the history
// and drops the legacy table, inside the migration transaction.
func adoptLegacy(ctx context.Context, tx *sql.Tx, d Dialect, table string, ms []Migration, now int64) ([]Migration, error) {
	exists, err := d.TableExists(ctx, tx, table)
	if err != nil {
		return nil, fmt.Errorf("look for legacy table %s: %w", table, err)
	}
	if !exists {
		return nil, nil
	}
	var maxVersion, count int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0), COUNT(*) FROM `+table).Scan(&maxVersion, &count); err != nil {
		return nil, fmt.Errorf("read legacy table %s: %w", table, err)
	}
	if count != maxVersion {
		return nil, fmt.Errorf("legacy table %s lists %d versions up to %d: not the 1..N an old build writes", table, count, maxVersion)
	}
	if maxVersion > len(ms) {
		return nil, fmt.Errorf("%w: legacy table %s is at version %d, this build knows %d", ErrSchemaTooNew, table, maxVersion, len(ms))
	}
	insert := fmt.Sprintf(`INSERT INTO %s (version, name, checksum, applied_at) VALUES (%s, %s, %s, %s)`,
		HistoryTable, d.Placeholder(1), d.Placeholder(2), d.Placeholder(3), d.Placeholder(4))
	for _, m := range ms[:maxVersion] {
		if _, err := tx.ExecContext(ctx, insert, m.Version, m.Name, m.Checksum, now); err != nil {
			return nil, fmt.Errorf("adopt %s version %d: %w", table, m.Version, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE `+table); err != nil {
		return nil, fmt.Errorf("drop legacy table %s: %w", table, err)
	}
	return ms[:maxVersion], nil
}

// short is a checksum cut for an error message.
func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
