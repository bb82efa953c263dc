// Package tlsconfig builds the bank's mutual-TLS configurations: a fresh *tls.Config per call,
// backed by a Source whose certificate, trust anchors (roots), intermediates and CRL set can be
// swapped without a restart, and which re-checks a peer's chain on every call. A Source is
// loaded from files (LoadSource) or fed by any go-spiffe X.509 source, such as the SPIFFE
// Workload API (NewSourceFrom, Update); it is such a source itself (X509Source).
package tlsconfig
