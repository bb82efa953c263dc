package devpki

import (
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"time"

	"mtlsbank/internal/pki"
)

// Init creates the dev PKI, or brings an existing one up to date: it keeps the CA and
// every leaf that still is what its name says, and reissues only leaves that are
// missing, unreadable, about to expire, of another key type, or (for expired and
// notyet) no longer outside their window. It returns one result per file. If the
// existing CA or CRL cannot be used it returns an error before writing anything.
func (p *PKI) Init() ([]FileResult, error) {
	s := p.newSession()
	cas := &authorities{}
	var crl *crlState
	fresh := p.o.force
	if !fresh {
		root, inter, err := s.loadBank()
		switch {
		case errors.Is(err, errNoCAFiles):
			fresh = true
		case err != nil:
			return nil, err
		default:
			cas.root, cas.inter = root, inter
			if crl, err = s.loadCRL(inter); err != nil {
				return nil, err
			}
		}
	}
	if err := s.ensureDirs(); err != nil {
		return nil, err
	}

	if fresh {
		reason := "new"
		if p.o.force {
			reason = "forced"
		}
		var err error
		if cas.root, cas.inter, err = s.createBank(reason); err != nil {
			return s.results, err
		}
		crl = &crlState{number: new(big.Int)}
	} else {
		for _, f := range bankCAFiles() {
			rel := filepath.Join(CADir, f)
			if filepath.Ext(f) == ".key" {
				if err := s.keepPrivate(rel); err != nil {
					return s.results, err
				}
			} else {
				s.keep(rel, "")
			}
		}
	}
	if err := s.ensureBundle(cas); err != nil {
		return s.results, err
	}
	var err error
	if cas.rogue, err = s.ensureRogue(); err != nil {
		return s.results, err
	}

	var revoked *pki.Leaf
	for _, pr := range profiles() {
		leaf, err := s.ensureLeaf(cas, pr)
		if err != nil {
			return s.results, fmt.Errorf("%s: %w", pr.name, err)
		}
		if pr.kind == kindRevoked {
			revoked = leaf
		}
	}

	added := crl.add(revoked.Cert.SerialNumber, s.now)
	switch {
	case !crl.exists:
		err = s.writeCRL(cas.inter, crl, "new")
	case added:
		err = s.writeCRL(cas.inter, crl, "revoked serial "+serialHex(revoked))
	case renewDue(crl.thisUpdate, crl.nextUpdate, s.now):
		err = s.writeCRL(cas.inter, crl, "next update "+crl.nextUpdate.Format(time.RFC3339))
	default:
		s.keep(CRLFile, "")
	}
	return s.results, err
}

// Issue (re)issues NAME.crt, NAME.key and NAME.p12. A built-in name gets its own
// profile again (so Issue("accounts", "", 0) rotates that service's key and
// certificate; reissuing "revoked" also lists the new serial in the CRL). Any other
// name gets a client certificate for spiffeID, which may be empty only if NAME.crt
// already exists with one SPIFFE ID. ttl 0 means the leaf TTL of the PKI.
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

	var crl *crlState
	switch pr.kind {
	case kindRevoked:
		if crl, err = s.loadCRL(cas.inter); err != nil {
			return nil, err
		}
	case kindRogue:
		if cas.rogue, err = s.loadCA(RogueCAFile, rogueCAKeyFile, nil); err != nil {
			return nil, fmt.Errorf("rogue CA unusable (run `certgen init`): %w", err)
		}
	}

	leaf, err := s.issue(cas, pr, ttl)
	if err != nil {
		return nil, err
	}
	if err := s.writeLeaf(name, leaf, reason); err != nil {
		return s.results, err
	}
	if crl != nil {
		crl.add(leaf.Cert.SerialNumber, s.now)
		err = s.writeCRL(cas.inter, crl, "revoked serial "+serialHex(leaf))
	}
	return s.results, err
}

// Revoke lists NAME's current serial in crl.pem, keeping the entries already there
// and incrementing the CRL number. Revoking a serial that is already listed changes
// nothing.
func (p *PKI) Revoke(name string) ([]FileResult, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s := p.newSession()
	cas, err := s.loadExistingBank()
	if err != nil {
		return nil, err
	}
	certs, err := readCerts(s.path(name + ".crt"))
	if err != nil {
		return nil, fmt.Errorf("revoke %s: %w", name, err)
	}
	leaf := &pki.Leaf{Cert: certs[0], Chain: certs}
	if err := pki.SignedBy(leaf.Cert, cas.inter.Cert); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotBankIssued, name, err)
	}
	crl, err := s.loadCRL(cas.inter)
	if err != nil {
		return nil, err
	}
	if !crl.add(leaf.Cert.SerialNumber, s.now) {
		s.keep(CRLFile, "serial "+serialHex(leaf)+" already revoked")
		return s.results, nil
	}
	return s.results, s.writeCRL(cas.inter, crl, "revoked "+name+" serial "+serialHex(leaf))
}

// loadExistingBank loads the bank CA for Issue and Revoke, which never create one.
func (s *session) loadExistingBank() (*authorities, error) {
	root, inter, err := s.loadBank()
	if errors.Is(err, errNoCAFiles) {
		return nil, fmt.Errorf("%w: no CA files in %s", ErrNoCA, s.path(CADir))
	}
	if err != nil {
		return nil, err
	}
	return &authorities{root: root, inter: inter}, nil
}

// serialHex formats a leaf's serial as openssl prints it (hex).
func serialHex(l *pki.Leaf) string { return fmt.Sprintf("%X", l.Cert.SerialNumber) }
