package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// KeyType names a key algorithm and size that the bank PKI can generate.
type KeyType string

// The key types the PKI can generate.
const (
	ECDSAP256 KeyType = "ecdsa-p256" // default
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	Ed25519   KeyType = "ed25519"
	// RSA1024 is weak: it exists only so tests can prove that servers reject it.
	RSA1024 KeyType = "rsa-1024"
)

// ErrUnknownKeyType is returned for a key type name or a key this package does not support.
var ErrUnknownKeyType = errors.New("unknown key type")

// ErrKeyMismatch is returned when a private key does not belong to a certificate.
var ErrKeyMismatch = errors.New("private key does not match certificate")

// KeyTypes lists every supported key type, the default first.
func KeyTypes() []KeyType {
	return []KeyType{ECDSAP256, RSA2048, RSA3072, Ed25519, RSA1024}
}

// ParseKeyType parses a key type name such as "ecdsa-p256" (case-insensitive).
func ParseKeyType(s string) (KeyType, error) {
	want := KeyType(strings.ToLower(strings.TrimSpace(s)))
	for _, kt := range KeyTypes() {
		if kt == want {
			return kt, nil
		}
	}
	names := make([]string, 0, len(KeyTypes()))
	for _, kt := range KeyTypes() {
		names = append(names, string(kt))
	}
	return "", fmt.Errorf("%w %q (want one of %s)", ErrUnknownKeyType, s, strings.Join(names, ", "))
}

// KeyTypeOf reports the key type of a public key (for example a certificate's PublicKey).
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return ECDSAP256, nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s", ErrUnknownKeyType, k.Curve.Params().Name)
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 1024:
			return RSA1024, nil
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		}
		return "", fmt.Errorf("%w: RSA-%d", ErrUnknownKeyType, k.N.BitLen())
	case ed25519.PublicKey:
		return Ed25519, nil
	}
	return "", fmt.Errorf("%w: %T", ErrUnknownKeyType, pub)
}

// KeyMatches returns an error unless key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return fmt.Errorf("%w: %T", ErrUnknownKeyType, key)
	}
	if !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("%w (certificate serial %s)", ErrKeyMismatch, SerialHex(cert.SerialNumber))
	}
	return nil
}

// GenerateKey returns a fresh private key of the given type.
func GenerateKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA1024:
		return rsa.GenerateKey(rand.Reader, 1024)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case Ed25519:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKeyType, kt)
}
