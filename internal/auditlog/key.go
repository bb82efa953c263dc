package auditlog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"mtlsbank/internal/pki"
)

// ErrKeyType is the error for a key that is neither Ed25519 nor ECDSA P-256.
var ErrKeyType = errors.New("audit keys are Ed25519 or ECDSA P-256")

// WriteKeyPair generates an Ed25519 audit signing key and writes it to keyPath (PKCS#8
// PEM, mode 0600) and its public key to pubPath (PKIX "PUBLIC KEY" PEM, mode 0644), each
// atomically. Ed25519: small deterministic signatures, no nonce to get wrong.
func WriteKeyPair(keyPath, pubPath string) error {
	key, err := pki.GenerateKey(pki.Ed25519)
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	pubPEM, err := EncodePublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return pki.WriteFileAtomic(pubPath, pubPEM, 0o644)
}

// EncodePublicKey returns pub as a PKIX "PUBLIC KEY" PEM block.
func EncodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	if err := checkKeyType(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// LoadSigningKey reads an audit signing key (PEM). It refuses a key file that the group
// or others may read or write, as ssh does: whoever reads the key can sign checkpoints
// over a rewritten trail.
func LoadSigningKey(path string) (crypto.Signer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit key %s: mode %04o lets others read or write it: chmod 600 it", path, info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	key, err := pki.ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	if err := checkKeyType(key.Public()); err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	return key, nil
}

// ParsePublicKey parses the verifying key of an audit trail: a "PUBLIC KEY" PEM block
// (as WriteKeyPair writes it) or a certificate, whose public key is taken.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block: want a PUBLIC KEY or a CERTIFICATE")
	}
	var pub crypto.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		pub = k
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		pub = c.PublicKey
	default:
		return nil, fmt.Errorf("unexpected PEM block %q: want a PUBLIC KEY or a CERTIFICATE", block.Type)
	}
	if err := checkKeyType(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return nil
		}
	}
	return fmt.Errorf("%w, not %T", ErrKeyType, pub)
}

// KeyID names a public key in checkpoints: the first 8 bytes of the SHA-256 of its
// PKIX encoding, in hex.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8]), nil
}

// checkpointMessage is what a checkpoint's signature covers: a context string, so that
// the signature means nothing elsewhere, the service, the checkpoint's position, its time
// and its link (prev), which commits to every line before it.
func checkpointMessage(service string, seq uint64, timestamp, prev string) []byte {
	m := []byte("mtlsbank audit checkpoint v1\x00")
	m = append(m, service...)
	m = append(m, 0)
	m = strconv.AppendUint(m, seq, 10)
	m = append(m, 0)
	m = append(m, timestamp...)
	m = append(m, 0)
	return append(m, prev...)
}

func sign(key crypto.Signer, msg []byte) ([]byte, error) {
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	digest := sha256.Sum256(msg)
	return key.Sign(rand.Reader, digest[:], crypto.SHA256)
}

func verifySignature(pub crypto.PublicKey, msg, sig []byte) bool {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(k, digest[:], sig)
	}
	return false
}
