package devpki

import (
	"crypto/x509"
	"fmt"
	"net"
	"regexp"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/pki"
)

// kind is what a built-in leaf is for; each bad kind is wrong in exactly one way.
type kind int

const (
	kindClient     kind = iota // valid client: clientAuth, one SPIFFE ID
	kindServer                 // a service: serverAuth+clientAuth, DNS/IP SANs
	kindExpired                // valid client whose window ended a day ago
	kindNotYet                 // valid client whose window starts in a day
	kindRogue                  // client signed by the rogue CA
	kindSelfSigned             // client signed by itself
	kindServerOnly             // serverAuth EKU only
	kindRevoked                // valid client listed in the CRL
	kindCACert                 // a CA certificate (CA:true) with a SPIFFE ID
)

// The time-relative fixtures sit a day outside their window, and notyet is reissued
// once its start is less than notYetMargin away so that it stays "not yet valid"
// during a demo run.
const (
	fixtureOffset = 24 * time.Hour
	notYetMargin  = time.Hour
)

type profile struct {
	name     string
	spiffeID string
	kind     kind
}

// profiles returns the built-in leaves of DESIGN.md "Interface contract", in the order
// Init writes them.
func profiles() []profile {
	id := func(path string) string { return "spiffe://" + TrustDomain + path }
	return []profile{
		{"accounts", id("/service/accounts"), kindServer},
		{"payments", id("/service/payments"), kindServer},
		{"teller", id("/teller/tina"), kindClient},
		{"alice", id("/customer/alice"), kindClient},
		{"bob", id("/customer/bob"), kindClient},
		{"auditor", id("/auditor/audrey"), kindClient},
		{"intern", id("/intern/ivan"), kindClient},
		{"expired", id("/customer/eve"), kindExpired},
		{"notyet", id("/customer/nora"), kindNotYet},
		// The impersonations claim alice's identity: only their one flaw may stop them.
		{"rogue", id("/customer/alice"), kindRogue},
		{"selfsigned", id("/customer/alice"), kindSelfSigned},
		{"serveronly", id("/customer/alice"), kindServerOnly},
		{"revoked", id("/customer/mallory"), kindRevoked},
		{"cacert", id("/customer/alice"), kindCACert},
	}
}

// Names lists the built-in leaf names that Init writes.
func Names() []string {
	var names []string
	for _, pr := range profiles() {
		names = append(names, pr.name)
	}
	return names
}

func lookupProfile(name string) (profile, bool) {
	for _, pr := range profiles() {
		if pr.name == name {
			return pr, true
		}
	}
	return profile{}, false
}

// validName keeps NAME a plain file name.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// checkName rejects names that are not plain file names or that would overwrite the
// bundle, the intermediates, the CRL or the rogue CA.
func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("%w %q: use letters, digits, '.', '_' and '-' (starting with a letter or digit)", ErrBadName, name)
	}
	switch name {
	case "ca", "crl", "rogue-ca", "intermediates":
		return fmt.Errorf("%w %q: reserved", ErrBadName, name)
	}
	return nil
}

// ParseSPIFFEID checks that s is a workload SPIFFE ID in the bank trust domain.
func ParseSPIFFEID(s string) (spiffeid.ID, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w %q: %w", ErrBadSPIFFEID, s, err)
	}
	if !id.MemberOf(spiffeid.RequireTrustDomainFromString(TrustDomain)) {
		return spiffeid.ID{}, fmt.Errorf("%w: %q is in %q", ErrNotInTrustDomain, s, id.TrustDomain().Name())
	}
	if id.Path() == "" {
		return spiffeid.ID{}, fmt.Errorf("%w %q: the trust domain itself is not a workload (add a path)", ErrBadSPIFFEID, s)
	}
	return id, nil
}

// request is the certificate request for a profile.
func (pr profile) request() pki.Request {
	req := pki.Request{CommonName: pr.name, SPIFFEIDs: []string{pr.spiffeID}, Usage: pki.ClientAuth}
	switch pr.kind {
	case kindServer:
		req.DNSNames = []string{"localhost", pr.name}
		req.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
		req.Usage = pki.ServerAuth | pki.ClientAuth
	case kindServerOnly:
		req.Usage = pki.ServerAuth
	case kindCACert:
		req.IsCA = true
	}
	return req
}

// issue makes a fresh leaf for the profile, valid for ttl (the length of the window
// for the time-relative fixtures).
func (s *session) issue(cas *authorities, pr profile, ttl time.Duration) (*pki.Leaf, error) {
	window := pki.WithTTL(ttl)
	switch pr.kind {
	case kindExpired:
		end := s.now.Add(-fixtureOffset)
		window = pki.WithValidity(end.Add(-ttl), end)
	case kindNotYet:
		start := s.now.Add(fixtureOffset)
		window = pki.WithValidity(start, start.Add(ttl))
	}
	opts := s.leafOpts(window)
	switch pr.kind {
	case kindRogue:
		return cas.rogue.Issue(pr.request(), opts...)
	case kindSelfSigned:
		return pki.SelfSigned(pr.request(), opts...)
	}
	return cas.issuing.ca.Issue(pr.request(), opts...)
}

// problem says why an existing leaf (chain certs, key) no longer fits the profile, or
// "" if it can be kept. A bank leaf may come from any intermediate that is published
// and not revoked, and its file must carry exactly that intermediate.
func (s *session) problem(cas *authorities, pr profile, certs []*x509.Certificate) string {
	leaf := certs[0]
	switch pr.kind {
	case kindRogue, kindSelfSigned:
		issuer := leaf
		if pr.kind == kindRogue {
			issuer = cas.rogue.Cert
		}
		if pki.SignedBy(leaf, issuer) != nil {
			return "not signed by the current CA"
		}
		if len(certs) != 1 {
			return "chain does not match the current CA"
		}
	default:
		in := cas.issuerOf(leaf)
		switch {
		case in == nil:
			return "not signed by the current CA"
		case cas.revoked(in):
			return "issuer " + in.name + " revoked"
		case len(certs) != 2 || !certs[1].Equal(in.ca.Cert):
			return "chain does not match the current CA"
		}
	}
	if kt, err := pki.KeyTypeOf(leaf.PublicKey); err != nil || kt != s.p.o.keyType {
		return fmt.Sprintf("key type %s, want %s", kt, s.p.o.keyType)
	}
	if !matchesRequest(leaf, pr.request()) {
		return "profile changed"
	}
	switch pr.kind {
	case kindExpired:
		if !s.now.After(leaf.NotAfter) {
			return "no longer expired"
		}
	case kindNotYet:
		if leaf.NotBefore.Sub(s.now) < notYetMargin {
			return "about to become valid"
		}
	default:
		if s.now.Before(leaf.NotBefore) {
			return "not yet valid"
		}
		if renewDue(leaf.NotBefore, leaf.NotAfter, s.now) {
			return "expires " + leaf.NotAfter.Format(time.RFC3339)
		}
	}
	return ""
}

// renewDue reports whether less than a third of the window [from, until] remains.
func renewDue(from, until, now time.Time) bool {
	return until.Sub(now) < until.Sub(from)/3
}

// matchesRequest compares the identity and usage parts of a certificate with a request.
func matchesRequest(c *x509.Certificate, req pki.Request) bool {
	var uris, ips []string
	for _, u := range c.URIs {
		uris = append(uris, u.String())
	}
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	var wantIPs []string
	for _, ip := range req.IPs {
		wantIPs = append(wantIPs, ip.String())
	}
	var wantEKU []x509.ExtKeyUsage
	if req.Usage&pki.ServerAuth != 0 {
		wantEKU = append(wantEKU, x509.ExtKeyUsageServerAuth)
	}
	if req.Usage&pki.ClientAuth != 0 {
		wantEKU = append(wantEKU, x509.ExtKeyUsageClientAuth)
	}
	return c.Subject.CommonName == req.CommonName &&
		slices.Equal(uris, req.SPIFFEIDs) &&
		slices.Equal(c.DNSNames, req.DNSNames) &&
		slices.Equal(ips, wantIPs) &&
		slices.Equal(c.ExtKeyUsage, wantEKU) &&
		c.IsCA == req.IsCA
}
