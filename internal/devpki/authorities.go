package devpki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"mtlsbank/internal/pki"
)

// authorities are the CAs of the dev PKI and the state that says how they are used.
type authorities struct {
	root    *pki.CA
	inters  []*intermediate // in state order: oldest first
	issuing *intermediate   // the one that issues new leaves
	rogue   *pki.CA         // an unrelated root that signs the rogue leaf
	st      *state
}

// intermediate is one intermediate CA that certgen runs.
type intermediate struct {
	name    string // file stem in CADir, and the name `certgen revoke-ca` takes
	ca      *pki.CA
	expired bool // past its NotAfter: no longer published nor used
}

// revoked reports whether the root's CRL lists in.
func (a *authorities) revoked(in *intermediate) bool {
	return a.st.CAs[0].lists(in.ca.Cert.SerialNumber)
}

// published are the intermediates whose certificates go into intermediates.crt and
// whose CRLs go into crl.pem: every one not expired, revoked ones included, so that a
// verifier can build the chain of their leaves and find the revocation.
func (a *authorities) published() []*intermediate {
	var out []*intermediate
	for _, in := range a.inters {
		if !in.expired {
			out = append(out, in)
		}
	}
	return out
}

// issuerOf returns the published intermediate that signed cert, or nil.
func (a *authorities) issuerOf(cert *x509.Certificate) *intermediate {
	for _, in := range a.published() {
		if pki.SignedBy(cert, in.ca.Cert) == nil {
			return in
		}
	}
	return nil
}

// lookup returns the intermediate called name, or nil.
func (a *authorities) lookup(name string) *intermediate {
	for _, in := range a.inters {
		if in.name == name {
			return in
		}
	}
	return nil
}

// names lists the CAs by name, for error messages.
func (a *authorities) names() []string {
	names := []string{rootName}
	for _, in := range a.inters {
		names = append(names, in.name)
	}
	return names
}

// bankCAFiles are the files of the first root and intermediate inside CADir: a dev
// PKI exists if any of them does.
func bankCAFiles() []string { return []string{rootKeyFile, rootCertFile, interKeyFile, interCertFile} }

// errNoCAFiles means none of the bank CA files exist yet.
var errNoCAFiles = errors.New("no CA files")

// loadBank loads the state and every CA it lists from CADir. It returns errNoCAFiles
// if none of the first CA files exist, ErrBrokenCA if some are missing or do not fit,
// and ErrBadState if the state file is unreadable. A dev PKI made before the state
// file existed gets one built from its CA files and crl.pem (marked new, so Init and
// the other commands write it).
func (s *session) loadBank() (*authorities, error) {
	var missing []string
	for _, f := range bankCAFiles() {
		if _, err := os.Stat(s.path(filepath.Join(CADir, f))); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, f)
		} else if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBrokenCA, err)
		}
	}
	switch len(missing) {
	case 0:
	case len(bankCAFiles()):
		return nil, errNoCAFiles
	default:
		return nil, fmt.Errorf("%w: %s lacks %v", ErrBrokenCA, s.path(CADir), missing)
	}
	root, err := s.loadCA(rootCertFile, rootKeyFile, nil)
	if err == nil {
		err = s.checkValid(rootCertFile, root.Cert)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBrokenCA, err)
	}
	st, ok, err := s.readState()
	if err != nil {
		return nil, err
	}
	if !ok {
		first, err := s.loadCA(interCertFile, interKeyFile, root.Cert)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBrokenCA, err)
		}
		if st, err = s.importState(root, first); err != nil {
			return nil, err
		}
	}
	cas := &authorities{root: root, st: st}
	for _, c := range st.CAs[1:] {
		ca, err := s.loadCA(c.Name+".crt", c.Name+".key", root.Cert)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBrokenCA, err)
		}
		in := &intermediate{name: c.Name, ca: ca, expired: s.now.After(ca.Cert.NotAfter)}
		if c.Name == st.Issuing {
			if err := s.checkValid(c.Name+".crt", ca.Cert); err != nil {
				return nil, fmt.Errorf("%w: issuing intermediate: %w (run `certgen rollover`)", ErrBrokenCA, err)
			}
			cas.issuing = in
		} else if s.now.Before(ca.Cert.NotBefore) {
			return nil, fmt.Errorf("%w: %s: not valid before %s", ErrBrokenCA, s.path(filepath.Join(CADir, c.Name+".crt")),
				ca.Cert.NotBefore.Format(time.RFC3339))
		}
		cas.inters = append(cas.inters, in)
	}
	if cas.revoked(cas.issuing) {
		return nil, fmt.Errorf("%w: the issuing intermediate %s is revoked", ErrBadState, cas.issuing.name)
	}
	return cas, nil
}

// loadCA loads a CA certificate and key from CADir (or, for the rogue CA, the cert
// from the top directory) and checks who signed it.
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
	return ca, nil
}

// checkValid fails if cert is not valid now.
func (s *session) checkValid(rel string, cert *x509.Certificate) error {
	if s.now.Before(cert.NotBefore) || s.now.After(cert.NotAfter) {
		return fmt.Errorf("%s: valid only from %s to %s", s.path(filepath.Join(CADir, rel)),
			cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// createBank makes and writes a new root and first intermediate, with a new state.
func (s *session) createBank(reason string) (*authorities, error) {
	opts := s.caOpts()
	root, err := pki.NewRootCA(rootCommonName, opts...)
	if err != nil {
		return nil, err
	}
	inter, err := root.NewIntermediate(interCommonName, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.writeCA(rootCertFile, rootKeyFile, root, reason); err != nil {
		return nil, err
	}
	if err := s.writeCA(interCertFile, interKeyFile, inter, reason); err != nil {
		return nil, err
	}
	first := &intermediate{name: intermediateNameOf(1), ca: inter}
	return &authorities{root: root, inters: []*intermediate{first}, issuing: first, st: newState()}, nil
}

// newIntermediate makes and writes the next generation of intermediate under the
// root and makes it the issuing one; the others stay as they are.
func (s *session) newIntermediate(cas *authorities) (*intermediate, error) {
	gen := 1
	for _, in := range cas.inters {
		gen = max(gen, generation(in.name))
	}
	gen++
	name := intermediateNameOf(gen)
	ca, err := cas.root.NewIntermediate(interCommonName+" "+strconv.Itoa(gen), s.caOpts()...)
	if err != nil {
		return nil, err
	}
	if err := s.writeCA(name+".crt", name+".key", ca, "rollover: new issuing intermediate"); err != nil {
		return nil, err
	}
	in := &intermediate{name: name, ca: ca}
	cas.inters = append(cas.inters, in)
	cas.issuing = in
	cas.st.CAs = append(cas.st.CAs, caState{Name: name})
	cas.st.Issuing = name
	return in, nil
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
			err = s.checkValid(RogueCAFile, ca.Cert)
		}
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

// ensureBundle writes ca.crt, the trust anchors: the root only.
func (s *session) ensureBundle(cas *authorities) error {
	return s.ensureContent(BundleFile, pki.EncodeCertsPEM(cas.root.Cert), 0o644)
}

// ensureIntermediates writes intermediates.crt, the chain material: every published
// intermediate, oldest first.
func (s *session) ensureIntermediates(cas *authorities) error {
	var certs []*x509.Certificate
	for _, in := range cas.published() {
		certs = append(certs, in.ca.Cert)
	}
	return s.ensureContent(IntermediatesFile, pki.EncodeCertsPEM(certs...), 0o644)
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
