// Package tlsconfig builds the bank's mutual-TLS configurations: a fresh *tls.Config per call,
// backed by a Source whose certificate, CA bundle and CRL can be swapped without a restart.
package tlsconfig
