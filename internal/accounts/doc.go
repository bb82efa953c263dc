// Package accounts serves bank.accounts.v1.AccountsService over the ledger: it maps the
// API to ledger requests, applies ownership from the authorization Decision, and turns
// ledger errors into gRPC status codes.
package accounts
