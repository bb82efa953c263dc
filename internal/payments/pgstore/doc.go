// Package pgstore is the payments.Store on PostgreSQL (pgx v5, pgxpool): the
// production store, on a database server that several replicas of the payments
// service share.
//
// Correctness across replicas comes from the database alone, never from a lock in
// a process. Each write is its own READ COMMITTED transaction (no group commit:
// PostgreSQL already shares one WAL flush among the transactions that commit
// together, and batches of two replicas could deadlock on each other's locks). A
// transaction that records a customer's order under the rolling limit first takes
// a transaction-scoped advisory lock keyed by (creator, currency)
// (pg_advisory_xact_lock): the orders of one customer in one currency are summed
// and inserted one at a time across all replicas, and READ COMMITTED lets each see
// every order committed before its lock was granted. A PENDING payment is carried
// out under a lease (lease_owner, lease_until), taken by a conditional UPDATE of
// its row, so that replicas recovering at once call accounts for it once.
package pgstore
