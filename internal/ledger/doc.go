// Package ledger is the bank's ledger of record: accounts, balances and
// idempotent double-entry transactions over a transactional Store, and a
// stream of the entries as they commit. It knows nothing of gRPC.
package ledger
