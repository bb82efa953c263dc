package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

const (
	pemTypeCert  = "CERTIFICATE"
	pemTypeKey   = "PRIVATE KEY"
	pemTypeCRL   = "X509 CRL"
	pemTypeRSA   = "RSA PRIVATE KEY"
	pemTypeEC    = "EC PRIVATE KEY"
	pemTypeECPar = "EC PARAMETERS"
)

// ErrNoPEM is returned when data holds no PEM block of the wanted kind.
var ErrNoPEM = errors.New("no PEM data found")

// EncodeCertsPEM encodes certificates as consecutive "CERTIFICATE" PEM blocks.
func EncodeCertsPEM(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: pemTypeCert, Bytes: c.Raw}) // a bytes.Buffer does not fail
	}
	return buf.Bytes()
}

// EncodeKeyPEM encodes a private key as PKCS#8 ("PRIVATE KEY").
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeKey, Bytes: der}), nil
}

// EncodeCRLPEM encodes a DER CRL as an "X509 CRL" PEM block.
func EncodeCRLPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCRL, Bytes: der})
}

// ParseCertsPEM parses every "CERTIFICATE" block in data, in order. It fails if there
// is none, if any block is malformed, or if any block is of another type.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	return parsePEMBlocks(data, pemTypeCert, "certificate", x509.ParseCertificate)
}

// parsePEMBlocks parses every PEM block of data with parse; every block must be of
// type typ, there must be at least one, and nothing that looks like a PEM block may
// be left over. what names one item in errors ("certificate", "CRL").
func parsePEMBlocks[T any](data []byte, typ, what string, parse func([]byte) (T, error)) ([]T, error) {
	var items []T
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != typ {
			return nil, fmt.Errorf("parse %ss: unexpected PEM block %q (block %d)", what, block.Type, len(items)+1)
		}
		item, err := parse(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse %s %d: %w", what, len(items)+1, err)
		}
		items = append(items, item)
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("parse %ss: malformed PEM block after %d %s(s)", what, len(items), what)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("parse %ss: %w", what, ErrNoPEM)
	}
	return items, nil
}

// ParseKeyPEM parses the first private key block in data: PKCS#8 ("PRIVATE KEY"),
// PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"). "EC PARAMETERS" blocks, as
// written by `openssl ecparam -genkey`, are skipped.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case pemTypeECPar:
			continue
		case pemTypeKey:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case pemTypeRSA:
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case pemTypeEC:
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			return nil, fmt.Errorf("parse private key: unexpected PEM block %q", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parse private key (%s): %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("parse private key: %w: %T", ErrUnknownKeyType, key)
		}
		return signer, nil
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, errors.New("parse private key: malformed PEM block")
	}
	return nil, fmt.Errorf("parse private key: %w", ErrNoPEM)
}

// NewCertPool returns a pool holding exactly certs (never the system roots).
func NewCertPool(certs ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}
