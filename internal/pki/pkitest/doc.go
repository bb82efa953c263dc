// Package pkitest builds a throwaway bank PKI for tests: a root, one intermediate (more
// on request, for rollover and per-intermediate revocation tests), leaves under each,
// and numbered CRLs per CA, good or deliberately bad (stale, rolled back, delta, with an
// issuing distribution point), all with real keys and valid for a few hours.
package pkitest
