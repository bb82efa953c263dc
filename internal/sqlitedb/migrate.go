package sqlitedb

import "mtlsbank/internal/migrate"

// The migration runner moved to package migrate, which serves SQLite and
// PostgreSQL alike. These names keep the stores that still call sqlitedb
// compiling; they are the same mechanism, not a second one. New code uses
// package migrate.

// HistoryTable is migrate.HistoryTable.
//
// Deprecated: use migrate.HistoryTable.
const HistoryTable = migrate.HistoryTable

// Errors of Migrate, as in package migrate.
var (
	// Deprecated: use migrate.ErrSchemaTooNew.
	ErrSchemaTooNew = migrate.ErrSchemaTooNew
	// Deprecated: use migrate.ErrMigrationChanged.
	ErrMigrationChanged = migrate.ErrMigrationChanged
	// Deprecated: use migrate.ErrMigrationFiles.
	ErrMigrationFiles = migrate.ErrMigrationFiles
)

// Migration is migrate.Migration.
//
// Deprecated: use migrate.Migration.
type Migration = migrate.Migration

// Dialect is migrate.Dialect.
//
// Deprecated: use migrate.Dialect.
type Dialect = migrate.Dialect

// SQLite is migrate.SQLite.
//
// Deprecated: use migrate.SQLite.
type SQLite = migrate.SQLite

// MigrateOption is migrate.Option.
//
// Deprecated: use migrate.Option.
type MigrateOption = migrate.Option

// LoadMigrations is migrate.Load.
//
// Deprecated: use migrate.Load.
var LoadMigrations = migrate.Load

// Migrate is migrate.Run.
//
// Deprecated: use migrate.Run.
var Migrate = migrate.Run

// WithMigrationClock is migrate.WithClock.
//
// Deprecated: use migrate.WithClock.
var WithMigrationClock = migrate.WithClock

// WithLegacyTable is migrate.WithLegacyTable.
//
// Deprecated: use migrate.WithLegacyTable.
var WithLegacyTable = migrate.WithLegacyTable
