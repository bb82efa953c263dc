// Package sqlitestore keeps payment orders in an SQLite file (the embedded
// default): a payments.Store whose writes are committed in groups, one
// transaction and one fsync for whatever is waiting (package groupcommit).
package sqlitestore
