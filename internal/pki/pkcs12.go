package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// EncodePKCS12 encodes the leaf's key and certificate, followed by caCerts, as a
// password-protected PKCS#12 file with modern algorithms (PBES2, AES-256-CBC,
// PBKDF2-HMAC-SHA-256) that OpenSSL 3 reads without -legacy. The key entry and the
// leaf's certificate carry the friendlyName name (Java's alias, the FriendlyName of
// .NET and Windows) beside the localKeyId that pairs them.
func EncodePKCS12(l *Leaf, name string, caCerts []*x509.Certificate, password string) ([]byte, error) {
	data, err := pkcs12.Modern.Encode(l.Key, l.Cert, caCerts, password)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12 for %q: %w", l.Cert.Subject.CommonName, err)
	}
	if data, err = setPKCS12FriendlyName(data, password, name); err != nil {
		return nil, fmt.Errorf("encode PKCS#12 for %q: %w", l.Cert.Subject.CommonName, err)
	}
	return data, nil
}

// DecodePKCS12 decodes a PKCS#12 file into its leaf (Chain = leaf followed by the
// non-root CA certificates) and all the CA certificates it holds. It checks that the
// key belongs to the leaf. PKCS12FriendlyName reads the entry's name.
func DecodePKCS12(data []byte, password string) (*Leaf, []*x509.Certificate, error) {
	key, cert, caCerts, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, nil, fmt.Errorf("decode PKCS#12: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("decode PKCS#12: %w: %T", ErrUnknownKeyType, key)
	}
	if err := KeyMatches(cert, signer); err != nil {
		return nil, nil, fmt.Errorf("decode PKCS#12: %w", err)
	}
	chain := append([]*x509.Certificate{cert}, intermediates(caCerts)...)
	return &Leaf{Cert: cert, Key: signer, Chain: chain}, caCerts, nil
}
