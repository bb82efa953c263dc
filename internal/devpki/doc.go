// Package devpki creates and maintains the development PKI in certs/dev (what
// `make certs` and certgen run): the bank CA, good and deliberately bad leaves, and a CRL.
package devpki
