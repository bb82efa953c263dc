package devpki

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"slices"

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
		return leaf, s.ensureP12(cas, pr.name, leaf)
	}
	leaf, err := s.issue(cas, pr, s.p.o.leafTTL)
	if err != nil {
		return nil, err
	}
	return leaf, s.writeLeaf(cas, pr.name, leaf, reason)
}

// writeLeaf writes NAME.key (0600), NAME.crt (leaf and intermediates) and NAME.p12
// (0600, its key entry named NAME).
func (s *session) writeLeaf(cas *authorities, name string, leaf *pki.Leaf, reason string) error {
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
	p12, err := pki.EncodePKCS12(leaf, name, s.p12CACerts(cas, leaf), s.p.o.p12Password)
	if err != nil {
		return err
	}
	return s.write(name+".p12", p12, 0o600, reason)
}

// p12CACerts returns the CA certificates that NAME.p12 holds besides the leaf: its
// intermediates and, with WithP12FullChain, the root that signed the last of them (none
// for a self-signed leaf).
func (s *session) p12CACerts(cas *authorities, leaf *pki.Leaf) []*x509.Certificate {
	caCerts := slices.Clone(leaf.Chain[1:])
	if !s.p.o.p12Full {
		return caCerts
	}
	top := leaf.Chain[len(leaf.Chain)-1]
	for _, root := range []*pki.CA{cas.root, cas.rogue} {
		if root != nil && !top.Equal(root.Cert) && top.CheckSignatureFrom(root.Cert) == nil {
			return append(caCerts, root.Cert)
		}
	}
	return caCerts
}

// ensureP12 keeps NAME.p12 if it opens with the configured password, holds the leaf
// and exactly the CA certificates that p12CACerts gives, and names its key entry NAME
// (files of certgen before friendlyNames are rewritten once).
func (s *session) ensureP12(cas *authorities, name string, leaf *pki.Leaf) error {
	rel := name + ".p12"
	want := s.p12CACerts(cas, leaf)
	data, err := os.ReadFile(s.path(rel))
	reason := "new"
	if err == nil {
		got, gotCAs, err := pki.DecodePKCS12(data, s.p.o.p12Password)
		gotName, nameErr := pki.PKCS12FriendlyName(data, s.p.o.p12Password)
		switch {
		case err != nil || !got.Cert.Equal(leaf.Cert):
			reason = "stale or other password"
		case !slices.EqualFunc(gotCAs, want, (*x509.Certificate).Equal):
			reason = "other CA certificates"
		case nameErr != nil || gotName == "":
			reason = "no friendlyName"
		case gotName != name:
			reason = "other friendlyName"
		default:
			return s.keepPrivate(rel)
		}
	}
	p12, err := pki.EncodePKCS12(leaf, name, want, s.p.o.p12Password)
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
