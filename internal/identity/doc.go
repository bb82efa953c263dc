// Package identity says who a peer is, from the leaf of its verified certificate chain:
// its SPIFFE ID in the bank trust domain, subject, serial, fingerprint and expiry.
package identity
