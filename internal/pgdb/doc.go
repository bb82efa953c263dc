// Package pgdb opens a PostgreSQL database the way every store of the bank needs
// it, so that the ledger's and payments' PostgreSQL stores share one mechanism:
// one pgx pool of a given size; the store's schema migrations applied through
// internal/migrate under the migrators' advisory lock (replicas starting
// together migrate once), or only checked (WithoutMigrations) when the service
// runs as a runtime role that may not change the schema; the migration step
// (Migrate) that also grants the runtime role the store's RuntimeGrants and
// nothing else; and whether the connected role could change the schema, which a
// service reports at start.
//
// Each store gives only its Schema: its migration files and its runtime grants.
package pgdb
