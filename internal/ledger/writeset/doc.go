// Package writeset is the write transaction of the ledger's SQL stores: it keeps a
// transaction's writes in memory, answers the transaction's own reads from them, and
// hands them to the store grouped by table when it commits, so that a savepoint costs no
// statement and each account's balance is written once per transaction.
package writeset
