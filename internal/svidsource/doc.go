// Package svidsource takes a TLS endpoint's identity from the SPIFFE Workload API (a SPIRE
// agent's socket): the X.509-SVID and the trust bundle arrive through go-spiffe's
// workloadapi.X509Source and are kept in a tlsconfig.Source, rotation after rotation, so
// that every check of the file-based identity applies to them unchanged.
package svidsource
