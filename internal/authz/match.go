package authz

import (
	"path"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
)

// matcher is one identities entry: every criterion it sets must hold (logical AND), and
// every comparison is exact or typed; never a substring of a subject or issuer.
type matcher struct {
	name  string
	roles []string

	id          spiffeid.ID // exact SPIFFE ID
	prefix      spiffeid.ID // SPIFFE ID path prefix, by whole segments, matching only IDs under it
	glob        string      // path.Match pattern over the SPIFFE ID
	cn          string      // exact subject common name
	ou          string      // exact value of one subject organizational unit
	dns         string      // exact DNS SAN (lower case; DNS names are case-insensitive)
	fingerprint *[32]byte   // SHA-256 of the leaf DER
}

// match reports whether the certificate identity id satisfies every criterion. id is a
// pointer because Identity is a large struct and Decide calls match once per entry.
func (m *matcher) match(id *identity.Identity) bool {
	if !m.matchID(id.ID) {
		return false
	}
	if m.cn != "" && id.Subject.CommonName != m.cn {
		return false
	}
	if m.ou != "" && !containsExact(id.Subject.OrganizationalUnit, m.ou) {
		return false
	}
	if m.dns != "" && !containsFold(id.DNSNames, m.dns) {
		return false
	}
	if m.fingerprint != nil && *m.fingerprint != id.Fingerprint {
		return false
	}
	return true
}

// matchSubject reports whether a delegated end user, known only by its SPIFFE ID, matches:
// only entries made solely of SPIFFE ID criteria can.
func (m *matcher) matchSubject(id spiffeid.ID) bool {
	return m.subjectOnly() && m.matchID(id)
}

// subjectOnly reports whether the entry is made solely of SPIFFE ID criteria.
func (m *matcher) subjectOnly() bool {
	return m.cn == "" && m.ou == "" && m.dns == "" && m.fingerprint == nil
}

func (m *matcher) matchID(id spiffeid.ID) bool {
	if !m.id.IsZero() && id != m.id {
		return false
	}
	// Under the prefix: the same trust domain and a path under the prefix's. A
	// spiffeid.ID can only be made by parsing (its fields are go-spiffe's), so its string
	// is always "spiffe://" + trust domain + path, and a trust domain holds no '/': that
	// is the whole ID under the whole prefix ID, compared in one string. If go-spiffe
	// ever stored IDs otherwise, TestAttack7PrefixExhaustiveSmall compares this with the
	// trust domain and path apart.
	if !m.prefix.IsZero() && !hasPathPrefix(id.String(), m.prefix.String()) {
		return false
	}
	if m.glob != "" {
		if ok, err := path.Match(m.glob, id.String()); err != nil || !ok {
			return false
		}
	}
	return true
}

// hasPathPrefix reports whether the SPIFFE ID path p is strictly under prefix (a path
// without trailing slash): p must be prefix, a slash, then one or more segments, none of
// them empty, "." or "..". So /teller is a prefix of /teller/tina and /teller/b/tom, not of
// /teller itself, /tellerx/tina, /teller/ or /teller//tina. A parsed spiffeid.ID never has
// empty or dot segments (go-spiffe refuses them); the matcher refuses them anyway rather
// than rely on every caller having parsed.
func hasPathPrefix(p, prefix string) bool {
	// Compared in place rather than against prefix+"/", which would allocate on every call.
	if len(p) <= len(prefix)+1 || p[len(prefix)] != '/' || p[:len(prefix)] != prefix {
		return false
	}
	rest := p[len(prefix)+1:]
	for {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		if !more {
			return true
		}
		rest = tail
	}
}

func containsExact(values []string, want string) bool {
	for _, v := range values {
		if v == want {
			return true
		}
	}
	return false
}

func containsFold(values []string, want string) bool {
	for _, v := range values {
		if strings.EqualFold(v, want) {
			return true
		}
	}
	return false
}
