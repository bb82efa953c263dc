package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"time"

	"mtlsbank/internal/migrate"
)

// migrationFiles are the schema versions, named NNNN_what.sql and numbered
// from 0001 without gaps. A released file is never edited (the runner refuses
// a database whose applied migrations have another checksum); a change is a
// new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrSchemaTooNew means the database was migrated by a newer build.
var ErrSchemaTooNew = migrate.ErrSchemaTooNew

// legacyTable is where the ledger's own runner, before migrate.Run, kept
// its versions; a file it migrated is adopted on first open.
const legacyTable = "schema_version"

func loadMigrations() ([]migrate.Migration, error) {
	return migrate.Load(migrationFiles, "migrations")
}

// migrateSchema brings the schema to the newest version in one transaction, so a
// failed migration leaves the previous version intact.
func migrateSchema(ctx context.Context, db *sql.DB, now time.Time) (version int, err error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, err
	}
	return migrate.Run(ctx, db, migrate.SQLite{}, ms,
		migrate.WithLegacyTable(legacyTable),
		migrate.WithClock(func() time.Time { return now }))
}
