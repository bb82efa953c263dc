package devpki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"mtlsbank/internal/pki"
)

// authorities are the CAs of the dev PKI.
type authorities struct {
	root, inter *pki.CA // the bank CA; the intermediate issues leaves and the CRL
	rogue       *pki.CA // an unrelated root that signs the rogue leaf
}

// bankCAFiles are the files of the bank CA inside CADir.
func bankCAFiles() []string { return []string{rootKeyFile, rootCertFile, interKeyFile, interCertFile} }

// errNoCAFiles means none of the bank CA files exist yet.
var errNoCAFiles = errors.New("no CA files")

// loadBank loads the root and intermediate from CADir. It returns errNoCAFiles if
// none of their files exist, and ErrBrokenCA if some are missing or do not fit.
func (s *session) loadBank() (root, inter *pki.CA, err error) {
	var missing []string
	for _, f := range bankCAFiles() {
		if _, err := os.Stat(s.path(filepath.Join(CADir, f))); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, f)
		} else if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrBrokenCA, err)
		}
	}
	switch len(missing) {
	case 0:
	case len(bankCAFiles()):
		return nil, nil, errNoCAFiles
	default:
		return nil, nil, fmt.Errorf("%w: %s lacks %v", ErrBrokenCA, s.path(CADir), missing)
	}
	root, err = s.loadCA(rootCertFile, rootKeyFile, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBrokenCA, err)
	}
	inter, err = s.loadCA(interCertFile, interKeyFile, root.Cert)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBrokenCA, err)
	}
	return root, inter, nil
}

// loadCA loads a CA certificate and key from CADir (or, for the rogue CA, the cert
// from the top directory) and checks who signed it and that it is valid now.
func (s *session) loadCA(certRel, keyRel string, issuer *x509.Certificate) (*pki.CA, error) {
	certPath := s.path(filepath.Join(CADir, certRel))
	if certRel == RogueCAFile {
		certPath = s.path(RogueCAFile)
	}
	certs, err := readCerts(certPath)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%s: %d certificates, want 1", certPath, len(certs))
	}
	key, err := readKey(s.path(filepath.Join(CADir, keyRel)))
	if err != nil {
		return nil, err
	}
	var issuers []*x509.Certificate
	signer := certs[0]
	if issuer != nil {
		issuers, signer = []*x509.Certificate{issuer}, issuer
	}
	ca, err := pki.LoadCA(certs[0], key, issuers...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if err := pki.SignedBy(ca.Cert, signer); err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if s.now.Before(ca.Cert.NotBefore) || s.now.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("%s: valid only from %s to %s", certPath,
			ca.Cert.NotBefore.Format(time.RFC3339), ca.Cert.NotAfter.Format(time.RFC3339))
	}
	return ca, nil
}

// createBank makes and writes a new root and intermediate.
func (s *session) createBank(reason string) (root, inter *pki.CA, err error) {
	opts := s.caOpts()
	if root, err = pki.NewRootCA(rootCommonName, opts...); err != nil {
		return nil, nil, err
	}
	if inter, err = root.NewIntermediate(interCommonName, opts...); err != nil {
		return nil, nil, err
	}
	if err := s.writeCA(rootCertFile, rootKeyFile, root, reason); err != nil {
		return nil, nil, err
	}
	if err := s.writeCA(interCertFile, interKeyFile, inter, reason); err != nil {
		return nil, nil, err
	}
	return root, inter, nil
}

// ensureRogue loads the rogue CA, or makes a new one if it is missing or unusable:
// it is a fixture that nothing trusts, so replacing it loses nothing.
func (s *session) ensureRogue() (*pki.CA, error) {
	_, certErr := os.Stat(s.path(RogueCAFile))
	_, keyErr := os.Stat(s.path(filepath.Join(CADir, rogueCAKeyFile)))
	reason := "new"
	switch {
	case s.p.o.force:
		reason = "forced"
	case certErr == nil && keyErr == nil:
		ca, err := s.loadCA(RogueCAFile, rogueCAKeyFile, nil)
		if err == nil {
			s.keep(filepath.Join(CADir, rogueCAKeyFile), "")
			s.keep(RogueCAFile, "")
			return ca, nil
		}
		reason = "replacing: " + err.Error()
	case certErr == nil || keyErr == nil:
		reason = "replacing: half missing"
	}
	ca, err := pki.NewRootCA(rogueCommonName, s.caOpts()...)
	if err != nil {
		return nil, err
	}
	return ca, s.writeCA(RogueCAFile, rogueCAKeyFile, ca, reason)
}

func (s *session) caOpts() []pki.Option {
	return []pki.Option{
		pki.WithKeyType(s.p.o.keyType),
		pki.WithClock(func() time.Time { return s.now }),
		pki.WithTTL(s.p.o.caTTL),
	}
}

// writeCA writes a CA key (mode 0600) into CADir and its certificate, key first so that
// a certificate on disk always has its key.
func (s *session) writeCA(certRel, keyRel string, ca *pki.CA, reason string) error {
	keyPEM, err := pki.EncodeKeyPEM(ca.Key)
	if err != nil {
		return err
	}
	if err := s.write(filepath.Join(CADir, keyRel), keyPEM, 0o600, reason); err != nil {
		return err
	}
	if certRel != RogueCAFile {
		certRel = filepath.Join(CADir, certRel)
	}
	return s.write(certRel, pki.EncodeCertsPEM(ca.Cert), 0o644, reason)
}

// ensureBundle writes ca.crt (root then intermediate) unless it already says exactly that.
func (s *session) ensureBundle(cas *authorities) error {
	want := pki.EncodeCertsPEM(cas.root.Cert, cas.inter.Cert)
	return s.ensureContent(BundleFile, want, 0o644)
}

// ensureContent writes rel unless it already holds exactly data.
func (s *session) ensureContent(rel string, data []byte, perm os.FileMode) error {
	got, err := os.ReadFile(s.path(rel))
	switch {
	case err == nil && string(got) == string(data):
		s.keep(rel, "")
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return s.write(rel, data, perm, "new")
	}
	return s.write(rel, data, perm, "updated")
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := pki.ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}
