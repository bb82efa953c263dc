package devpki

import (
	"errors"
	"io/fs"
	"os"

	"mtlsbank/internal/pki"
)

// readLeaf loads NAME.crt and NAME.key. If they cannot be used it returns a short
// reason instead ("new" when neither exists).
func (s *session) readLeaf(name string) (*pki.Leaf, string) {
	certs, certErr := readCerts(s.path(name + ".crt"))
	key, keyErr := readKey(s.path(name + ".key"))
	certMissing, keyMissing := errors.Is(certErr, fs.ErrNotExist), errors.Is(keyErr, fs.ErrNotExist)
	switch {
	case certMissing && keyMissing:
		return nil, "new"
	case certMissing:
		return nil, "missing " + name + ".crt"
	case keyMissing:
		return nil, "missing " + name + ".key"
	case certErr != nil:
		return nil, "unreadable: " + certErr.Error()
	case keyErr != nil:
		return nil, "unreadable: " + keyErr.Error()
	}
	if err := pki.KeyMatches(certs[0], key); err != nil {
		return nil, "key does not match certificate"
	}
	return &pki.Leaf{Cert: certs[0], Key: key, Chain: certs}, ""
}

// ensureLeaf keeps the profile's leaf if it still is what its name says, and
// otherwise issues and writes a new one. It returns the leaf now on disk.
func (s *session) ensureLeaf(cas *authorities, pr profile) (*pki.Leaf, error) {
	leaf, reason := s.readLeaf(pr.name)
	switch {
	case s.p.o.force:
		reason = "forced"
	case reason == "":
		reason = s.problem(cas, pr, leaf.Chain)
	}
	if reason == "" {
		s.keep(pr.name+".crt", "")
		if err := s.keepPrivate(pr.name + ".key"); err != nil {
			return nil, err
		}
		return leaf, s.ensureP12(pr.name, leaf)
	}
	leaf, err := s.issue(cas, pr, s.p.o.leafTTL)
	if err != nil {
		return nil, err
	}
	return leaf, s.writeLeaf(pr.name, leaf, reason)
}

// writeLeaf writes NAME.key (0600), NAME.crt (leaf and intermediates) and NAME.p12 (0600).
func (s *session) writeLeaf(name string, leaf *pki.Leaf, reason string) error {
	keyPEM, err := pki.EncodeKeyPEM(leaf.Key)
	if err != nil {
		return err
	}
	if err := s.write(name+".key", keyPEM, 0o600, reason); err != nil {
		return err
	}
	if err := s.write(name+".crt", pki.EncodeCertsPEM(leaf.Chain...), 0o644, reason); err != nil {
		return err
	}
	p12, err := pki.EncodePKCS12(leaf, leaf.Chain[1:], s.p.o.p12Password)
	if err != nil {
		return err
	}
	return s.write(name+".p12", p12, 0o600, reason)
}

// ensureP12 keeps NAME.p12 if it opens with the configured password and holds the leaf.
func (s *session) ensureP12(name string, leaf *pki.Leaf) error {
	rel := name + ".p12"
	data, err := os.ReadFile(s.path(rel))
	reason := "new"
	if err == nil {
		got, _, err := pki.DecodePKCS12(data, s.p.o.p12Password)
		if err == nil && got.Cert.Equal(leaf.Cert) {
			return s.keepPrivate(rel)
		}
		reason = "stale or other password"
	}
	p12, err := pki.EncodePKCS12(leaf, leaf.Chain[1:], s.p.o.p12Password)
	if err != nil {
		return err
	}
	return s.write(rel, p12, 0o600, reason)
}

// keepPrivate keeps a file that holds a private key, tightening its mode to 0600.
func (s *session) keepPrivate(rel string) error {
	info, err := os.Stat(s.path(rel))
	if err != nil {
		return err
	}
	if info.Mode().Perm() == 0o600 {
		s.keep(rel, "")
		return nil
	}
	if err := os.Chmod(s.path(rel), 0o600); err != nil {
		return err
	}
	s.keep(rel, "mode set to 0600")
	return nil
}
