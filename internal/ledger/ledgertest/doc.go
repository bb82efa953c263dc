// Package ledgertest is the conformance suite of ledger.Store: one set of
// tests of the ledger's promises (double entry, balances equal to the sum of
// entries, gap-free sequences, idempotency, ownership listing and paging,
// Watch order, concurrency, the supply cap) that every store runs with Run,
// and the helpers those tests share.
package ledgertest
