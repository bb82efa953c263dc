// Command accounts is the bank's ledger of record, served over mutual TLS: every call is
// authorized from the caller's verified certificate against the service's policy.
package main
