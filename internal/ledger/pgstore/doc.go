// Package pgstore is the ledger.Store on PostgreSQL (pgx v5, pgxpool): the
// production store, on a database server that several replicas of the
// accounts service share.
//
// Correctness across replicas comes from the database alone. Every write
// transaction first locks the one counter row that hands out entry sequences
// (SELECT ... FOR UPDATE), then the account rows it reads (FOR UPDATE), always
// in that order, so writers of all replicas never deadlock and commit one after
// the other: sequences are gap-free and commit in sequence order, and an
// idempotency key, a balance or a system account is never decided twice.
// Reads run in REPEATABLE READ READ ONLY transactions: one snapshot, no locks;
// a single read (ViewRead) runs as one statement, without a transaction.
//
// A write transaction costs few round trips: it reads what a batch of requests
// needs at once (ledger.Prefetcher), keeps its writes in memory and sends them
// with the COMMIT, so that a batch of transfers takes three round trips to the
// server instead of about twelve per transfer (see backend).
package pgstore
