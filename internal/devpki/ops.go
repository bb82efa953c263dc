package devpki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"mtlsbank/internal/pki"
)

// Init creates the dev PKI, or brings an existing one up to date: it keeps the CAs and
// every leaf that still is what its name says, and reissues only leaves that are
// missing, unreadable, about to expire, of another key type, issued by a revoked
// intermediate, or (for expired and notyet) no longer outside their window. Leaves of
// an older intermediate that is not revoked are kept (a rollover does not force every
// leaf to move at once); a reissued leaf comes from the issuing intermediate. It
// writes ca.crt (the root), intermediates.crt and crl.pem (re-signing the CRLs when
// due), and returns one result per file. If the existing CA or state cannot be used it
// returns an error before writing anything.
func (p *PKI) Init() ([]FileResult, error) {
	s := p.newSession()
	defer s.done()
	if err := s.lock(); err != nil {
		return nil, err
	}
	var cas *authorities
	fresh := p.o.force
	if !fresh {
		var err error
		cas, err = s.loadBank()
		switch {
		case errors.Is(err, errNoCAFiles):
			fresh = true
		case err != nil:
			return nil, err
		}
	}
	if err := s.ensureDirs(); err != nil {
		return nil, err
	}
	if err := s.lock(); err != nil {
		return nil, err
	}

	if fresh {
		reason := "new"
		if p.o.force {
			reason = "forced"
		}
		base := s.lastCRLNumber()
		var err error
		if cas, err = s.createBank(reason); err != nil {
			return s.results, err
		}
		for i := range cas.st.CAs {
			cas.st.CAs[i].CRLNumber = base
		}
		if err := s.removeOldIntermediates(); err != nil {
			return s.results, err
		}
	} else if err := s.keepCAFiles(cas); err != nil {
		return s.results, err
	}
	if err := s.ensureBundle(cas); err != nil {
		return s.results, err
	}
	var err error
	if cas.rogue, err = s.ensureRogue(); err != nil {
		return s.results, err
	}

	for _, pr := range profiles() {
		leaf, err := s.ensureLeaf(cas, pr)
		if err != nil {
			return s.results, fmt.Errorf("%s: %w", pr.name, err)
		}
		if pr.kind == kindRevoked {
			in := cas.issuerOf(leaf.Cert)
			cas.st.ca(in.name).revoke(leaf.Cert.SerialNumber, s.now, pr.name)
		}
	}
	if err := s.ensureAuditKeys(); err != nil {
		return s.results, err
	}
	why := ""
	if p.o.force {
		why = "forced"
	}
	return s.results, s.commit(cas, p.o.force, why)
}

// keepCAFiles reports the files of the root and every intermediate as kept.
func (s *session) keepCAFiles(cas *authorities) error {
	names := []string{rootName}
	for _, in := range cas.inters {
		names = append(names, in.name)
	}
	for _, name := range names {
		s.keep(filepath.Join(CADir, name+".crt"), "")
		if err := s.keepPrivate(filepath.Join(CADir, name+".key")); err != nil {
			return err
		}
	}
	return nil
}

// lastCRLNumber is the highest CRL number the directory remembers, in the state or in
// crl.pem (0 if none), so that a PKI started over with --force continues the numbers:
// its CAs have the same names, and a verifier that still holds an old CRL would take
// a lower number for a rollback.
func (s *session) lastCRLNumber() int64 {
	var last int64
	if st, ok, err := s.readState(); err == nil && ok {
		for _, c := range st.CAs {
			last = max(last, c.CRLNumber)
		}
	}
	crls, _ := s.readCRLs()
	for _, crl := range crls {
		if crl.Number != nil && crl.Number.IsInt64() {
			last = max(last, crl.Number.Int64())
		}
	}
	return last
}

// removeOldIntermediates deletes the intermediates of earlier rollovers (Init --force).
func (s *session) removeOldIntermediates() error {
	for _, pattern := range []string{"intermediate-*.crt", "intermediate-*.key"} {
		matches, err := filepath.Glob(filepath.Join(s.path(CADir), pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			name := filepath.Base(m)
			if !intermediateName.MatchString(name[:len(name)-len(filepath.Ext(name))]) {
				continue
			}
			if err := s.remove(filepath.Join(CADir, name), "forced"); err != nil {
				return err
			}
		}
	}
	return nil
}

// Issue (re)issues NAME.crt, NAME.key and NAME.p12 from the issuing intermediate. A
// built-in name gets its own profile again (so Issue("accounts", "", 0) rotates that
// service's key and certificate; reissuing "revoked" also lists the new serial in the
// CRL). Any other name gets a client certificate for spiffeID, which may be empty
// only if NAME.crt already exists with one SPIFFE ID. ttl 0 means the leaf TTL of the
// PKI.
func (p *PKI) Issue(name, spiffeID string, ttl time.Duration) ([]FileResult, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if ttl < 0 {
		return nil, fmt.Errorf("%w: negative TTL %s", pki.ErrBadValidity, ttl)
	}
	if ttl == 0 {
		ttl = p.o.leafTTL
	}
	s := p.newSession()
	defer s.done()
	cas, err := s.loadExistingBank()
	if err != nil {
		return nil, err
	}
	existing, reason := s.readLeaf(name)
	if reason != "new" {
		reason = "rotated"
	}

	pr, known := lookupProfile(name)
	if known {
		if spiffeID != "" && spiffeID != pr.spiffeID {
			return nil, fmt.Errorf("%w: %s is %s, not %s", ErrProfileSPIFFEID, name, pr.spiffeID, spiffeID)
		}
	} else {
		if spiffeID == "" && existing != nil && len(existing.Cert.URIs) == 1 {
			spiffeID = existing.Cert.URIs[0].String()
		}
		if spiffeID == "" {
			return nil, fmt.Errorf("%w: %q is not a built-in name (%v); give it --spiffe-id", ErrSPIFFEIDRequired, name, Names())
		}
		id, err := ParseSPIFFEID(spiffeID)
		if err != nil {
			return nil, err
		}
		pr = profile{name: name, spiffeID: id.String(), kind: kindClient}
	}
	if pr.kind == kindRogue {
		if cas.rogue, err = s.loadCA(RogueCAFile, rogueCAKeyFile, nil); err != nil {
			return nil, fmt.Errorf("rogue CA unusable (run `certgen init`): %w", err)
		}
	}

	leaf, err := s.issue(cas, pr, ttl)
	if err != nil {
		return nil, err
	}
	if err := s.writeLeaf(cas, name, leaf, reason); err != nil {
		return s.results, err
	}
	if pr.kind == kindRevoked {
		cas.st.ca(cas.issuing.name).revoke(leaf.Cert.SerialNumber, s.now, name)
		err = s.commit(cas, false, "revoked serial "+serialHex(leaf))
	}
	return s.results, err
}

// Revoke lists NAME's current serial in the CRL of the intermediate that issued it,
// keeping the entries already there and incrementing that CRL's number. Revoking a
// serial that is already listed changes nothing.
func (p *PKI) Revoke(name string) ([]FileResult, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s := p.newSession()
	defer s.done()
	cas, err := s.loadExistingBank()
	if err != nil {
		return nil, err
	}
	certs, err := readCerts(s.path(name + ".crt"))
	if err != nil {
		return nil, fmt.Errorf("revoke %s: %w", name, err)
	}
	leaf := &pki.Leaf{Cert: certs[0], Chain: certs}
	in := cas.issuerOf(leaf.Cert)
	if in == nil || leaf.Cert.IsCA {
		return nil, fmt.Errorf("%w: %s (issued by %q; the intermediates are %v)", ErrNotBankIssued, name, leaf.Cert.Issuer, cas.names()[1:])
	}
	if !cas.st.ca(in.name).revoke(leaf.Cert.SerialNumber, s.now, name) {
		s.keep(CRLFile, "serial "+serialHex(leaf)+" already revoked")
		return s.results, nil
	}
	return s.results, s.commit(cas, false, "revoked "+name+" serial "+serialHex(leaf))
}

// RevokeCA lists the intermediate called name (see CANames) in the root's CRL, so that
// every leaf it issued is refused by a verifier that checks the whole chain. The root
// cannot be revoked, nor the issuing intermediate (Rollover first). The intermediate
// stays in intermediates.crt and keeps a CRL in crl.pem until it expires, so that
// verifiers build its leaves' chains and find it revoked. Revoking it again changes
// nothing.
func (p *PKI) RevokeCA(name string) ([]FileResult, error) {
	s := p.newSession()
	defer s.done()
	cas, err := s.loadExistingBank()
	if err != nil {
		return nil, err
	}
	in := cas.lookup(name)
	switch {
	case name == rootName:
		return nil, ErrRevokeRoot
	case in == nil:
		return nil, fmt.Errorf("%w %q: the dev CAs are %v", ErrUnknownCA, name, cas.names())
	case in == cas.issuing:
		return nil, fmt.Errorf("%w (%s issues now)", ErrRevokeIssuing, name)
	}
	serial := pki.SerialHex(in.ca.Cert.SerialNumber)
	if !cas.st.CAs[0].revoke(in.ca.Cert.SerialNumber, s.now, name) {
		s.keep(CRLFile, "intermediate "+name+" serial "+serial+" already revoked")
		return s.results, nil
	}
	return s.results, s.commit(cas, false, "revoked intermediate "+name+" serial "+serial)
}

// Rollover makes a new intermediate under the same root (CADir/intermediate-N) and
// makes it the one that issues: Issue and the leaves Init renews come from it from now
// on. Leaves of the older intermediates stay valid: intermediates.crt lists every
// intermediate and crl.pem holds a CRL for each, so verifiers accept both during the
// overlap. Once no leaf of the old one is in use, RevokeCA retires it.
func (p *PKI) Rollover() ([]FileResult, error) {
	s := p.newSession()
	defer s.done()
	cas, err := s.loadExistingBank()
	if err != nil {
		return nil, err
	}
	var base int64
	for _, c := range cas.st.CAs {
		base = max(base, c.CRLNumber)
	}
	in, err := s.newIntermediate(cas)
	if err != nil {
		return s.results, err
	}
	cas.st.ca(in.name).CRLNumber = base
	return s.results, s.commit(cas, false, "")
}

// RefreshCRLs re-signs every CRL in crl.pem (higher numbers, a new nextUpdate) if one
// has less than half of its validity left, or always with WithForce; it also repairs
// a crl.pem that does not say what the state says. Nothing is written if nothing is due.
func (p *PKI) RefreshCRLs() ([]FileResult, error) {
	s := p.newSession()
	defer s.done()
	cas, err := s.loadExistingBank()
	if err != nil {
		return nil, err
	}
	why := ""
	if p.o.force {
		why = "forced"
	}
	return s.results, s.commit(cas, p.o.force, why)
}

// CAInfo describes one CA of the dev PKI.
type CAInfo struct {
	Name     string // what RevokeCA takes
	Cert     string // path of its certificate
	Subject  string
	Serial   string // hex
	NotAfter time.Time
	Issuing  bool // issues new leaves
	Revoked  bool // listed in the root's CRL
	Expired  bool
}

// CAs lists the root and the intermediates, oldest first.
func (p *PKI) CAs() ([]CAInfo, error) {
	s := p.newSession()
	defer s.done()
	cas, err := s.loadExistingBank()
	if err != nil {
		return nil, err
	}
	info := func(name string, ca *pki.CA) CAInfo {
		return CAInfo{Name: name, Cert: s.path(filepath.Join(CADir, name+".crt")), Subject: ca.Cert.Subject.String(),
			Serial: pki.SerialHex(ca.Cert.SerialNumber), NotAfter: ca.Cert.NotAfter}
	}
	out := []CAInfo{info(rootName, cas.root)}
	for _, in := range cas.inters {
		ci := info(in.name, in.ca)
		ci.Issuing, ci.Revoked, ci.Expired = in == cas.issuing, cas.revoked(in), in.expired
		out = append(out, ci)
	}
	return out, nil
}

// loadExistingBank takes the lock and loads the bank CA for the commands other than
// Init, which never create one.
func (s *session) loadExistingBank() (*authorities, error) {
	if _, err := os.Stat(s.path(CADir)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no CA files in %s", ErrNoCA, s.path(CADir))
	}
	if err := s.lock(); err != nil {
		return nil, err
	}
	cas, err := s.loadBank()
	if errors.Is(err, errNoCAFiles) {
		return nil, fmt.Errorf("%w: no CA files in %s", ErrNoCA, s.path(CADir))
	}
	if err != nil {
		return nil, err
	}
	return cas, nil
}

// serialHex formats a leaf's serial as openssl prints it (pki.SerialHex).
func serialHex(l *pki.Leaf) string { return pki.SerialHex(l.Cert.SerialNumber) }
