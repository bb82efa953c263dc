// Package sqlitestore is the ledger.Store on an embedded SQLite file (the
// pure-Go modernc.org/sqlite driver): WAL, synchronous=FULL, one writer
// connection, a pool of read connections and versioned schema migrations.
package sqlitestore
