// Package payments records payment orders and carries them out, exactly once, by
// calling the accounts service on behalf of the payer. Orders apply the rules of
// the records (idempotency per creator, the rolling customer limit, leases) over a
// dialect-free Store: an SQLite file (package sqlitestore) or a PostgreSQL database
// that several payments processes share (package pgstore).
package payments
