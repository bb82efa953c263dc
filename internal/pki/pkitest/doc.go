// Package pkitest builds a throwaway bank PKI (root, intermediate, leaves, CRLs) for
// tests, with real keys and certificates valid for a few hours.
package pkitest
