// Package pki is the bank's certificate authority toolkit: root and intermediate CAs,
// leaf certificates with the right usages, CRLs, and PEM/PKCS#12 encodings.
package pki
