package authz

// Attack on commit 57c469f (a spiffe_id_prefix entry compared as one string, the whole ID
// under the whole prefix ID, instead of trust domain and path apart). Every test compares
// the new matcher with the old formula, reimplemented here, over generated, hand-picked
// and certificate-derived IDs, compiled and hand-built prefixes, and delegated end users.

import (
	"math/rand"
	"path"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
)

// oldMatchID is matcher.matchID before 57c469f.
func oldMatchID(m *matcher, id spiffeid.ID) bool {
	if !m.id.IsZero() && id != m.id {
		return false
	}
	if !m.prefix.IsZero() {
		if id.TrustDomain() != m.prefix.TrustDomain() || !hasPathPrefix(id.Path(), m.prefix.Path()) {
			return false
		}
	}
	if m.glob != "" {
		if ok, err := path.Match(m.glob, id.String()); err != nil || !ok {
			return false
		}
	}
	return true
}

// oldMatch is matcher.match with oldMatchID.
func oldMatch(m *matcher, id *identity.Identity) bool {
	if !oldMatchID(m, id.ID) {
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

func attack7Compare(t *testing.T, prefix, id spiffeid.ID) bool {
	t.Helper()
	m := &matcher{name: "p", prefix: prefix}
	oldOK, newOK := oldMatchID(m, id), m.matchID(id)
	if oldOK != newOK {
		t.Errorf("prefix %q (path %q), id %q (path %q): old %v, new %v", prefix, prefix.Path(), id, id.Path(), oldOK, newOK)
		return false
	}
	return true
}

// TestAttack7PrefixExhaustiveSmall compares old and new on every pair of IDs whose text
// after "spiffe://" is at most 6 bytes of "ab./" (trust domains "a", "a.b", "..", ".",
// paths with dots, prefixes of each other's strings), and a second alphabet with the
// characters a trust domain refuses (':', '@', '%', upper case, '~', '!') at most 4 bytes.
// Prefixes include those compile would refuse (no path).
func TestAttack7PrefixExhaustiveSmall(t *testing.T) {
	gen := func(alphabet string, maxLen int) []spiffeid.ID {
		var ids []spiffeid.ID
		var rec func(s string)
		rec = func(s string) {
			if len(s) > 0 {
				if id, err := spiffeid.FromString("spiffe://" + s); err == nil {
					ids = append(ids, id)
				}
			}
			if len(s) == maxLen {
				return
			}
			for i := 0; i < len(alphabet); i++ {
				rec(s + alphabet[i:i+1])
			}
		}
		rec("")
		return ids
	}
	for _, tc := range []struct {
		alphabet string
		maxLen   int
	}{{"ab./", 6}, {"aA.:/@%~!-", 4}} {
		ids := gen(tc.alphabet, tc.maxLen)
		pairs, matches := 0, 0
		for _, prefix := range ids {
			m := &matcher{name: "p", prefix: prefix}
			for _, id := range ids {
				pairs++
				oldOK, newOK := oldMatchID(m, id), m.matchID(id)
				if oldOK != newOK {
					t.Fatalf("prefix %q, id %q: old %v, new %v", prefix, id, oldOK, newOK)
				}
				if newOK {
					matches++
				}
			}
			// The zero ID and a hand-built ID of the prefix's trust domain alone.
			attack7Compare(t, prefix, spiffeid.ID{})
			attack7Compare(t, prefix, prefix.TrustDomain().ID())
		}
		t.Logf("alphabet %q up to %d: %d valid IDs, %d pairs, %d matches", tc.alphabet, tc.maxLen, len(ids), pairs, matches)
		if matches == 0 {
			t.Fatal("no pair matched: the generator is broken")
		}
	}
}

// TestAttack7PrefixRandom compares old and new on random IDs built to collide with the
// prefix: trust domains that extend, shorten or embed the prefix's, paths that extend,
// shorten, repeat or dot the prefix's segments, raw strings that go-spiffe may or may not
// accept, under the bank's trust domain and others.
func TestAttack7PrefixRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	tds := []string{"bank.local", "bank.localx", "bank.local.evil", "bank.localcustomer", "bank", "bank.loca",
		"x.bank.local", "bank-local", "bank_local", "b", ".", "..", "...", "bank.local.", ".bank.local",
		"bank.local-", "customer", "evil"}
	segs := []string{"customer", "customerx", "custome", "c", "x", "alice", ".", "..", "...", "", "Customer",
		"CUSTOMER", "customer.", ".customer", "customer-", "_", "-", "teller", "bank.local", "a.b", "%2f", "%2e%2e",
		":", "@", "spiffe:", "bank.localcustomer"}
	randPath := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteByte('/')
			b.WriteString(segs[rng.Intn(len(segs))])
		}
		return b.String()
	}
	var prefixes, ids []spiffeid.ID
	seen := map[string]bool{}
	add := func(list *[]spiffeid.ID, s string) {
		if seen[s] {
			return
		}
		seen[s] = true
		if id, err := spiffeid.FromString(s); err == nil {
			*list = append(*list, id)
		}
	}
	for i := 0; i < 3000; i++ {
		td := tds[rng.Intn(len(tds))]
		add(&prefixes, "spiffe://"+td+randPath(1+rng.Intn(3)))
	}
	seen = map[string]bool{}
	for _, p := range prefixes {
		s := p.String()
		// Everything derived from the prefix text: extensions, truncations, edits.
		for k := 0; k < 8; k++ {
			add(&ids, s+randPath(1+rng.Intn(3)))
			add(&ids, s+segs[rng.Intn(len(segs))]+randPath(rng.Intn(3)))
			cut := 9 + rng.Intn(len(s)-8)
			add(&ids, s[:cut]+randPath(1+rng.Intn(3)))
			add(&ids, s[:cut]+segs[rng.Intn(len(segs))]+randPath(rng.Intn(3)))
			add(&ids, "spiffe://"+tds[rng.Intn(len(tds))]+p.Path()+randPath(rng.Intn(3)))
		}
	}
	for i := 0; i < 20000; i++ {
		add(&ids, "spiffe://"+tds[rng.Intn(len(tds))]+randPath(1+rng.Intn(5)))
	}
	pairs, matches := 0, 0
	for _, p := range prefixes {
		m := &matcher{name: "p", prefix: p}
		for _, id := range ids {
			pairs++
			oldOK, newOK := oldMatchID(m, id), m.matchID(id)
			if oldOK != newOK {
				t.Fatalf("prefix %q, id %q: old %v, new %v", p, id, oldOK, newOK)
			}
			if newOK {
				matches++
			}
		}
	}
	t.Logf("%d prefixes x %d IDs = %d pairs, %d matches", len(prefixes), len(ids), pairs, matches)
	if matches < 1000 {
		t.Fatalf("only %d matches: the generator is broken", matches)
	}
}

// TestAttack7NamedScenarios spells out the scenarios of the brief against the prefix
// spiffe://bank.local/customer: what should match, what must not, and old == new.
func TestAttack7NamedScenarios(t *testing.T) {
	prefix := spiffeid.RequireFromString("spiffe://bank.local/customer")
	want := map[string]bool{
		"spiffe://bank.local/customer/x":          true,
		"spiffe://bank.local/customer/x/y":        true,
		"spiffe://bank.local/customer/...":        true, // "..." is an ordinary segment
		"spiffe://bank.local/customer/.x":         true,
		"spiffe://bank.local/customer/Alice":      true,
		"spiffe://bank.local/customer":            false,
		"spiffe://bank.local/customerx/x":         false,
		"spiffe://bank.local/Customer/x":          false,
		"spiffe://bank.local/custome/x":           false,
		"spiffe://bank.local.evil/customer/x":     false,
		"spiffe://bank.localcustomer/x":           false,
		"spiffe://bank.localcustomer/customer/x":  false,
		"spiffe://bank.loca/customer/x":           false,
		"spiffe://x.bank.local/customer/x":        false,
		"spiffe://bank.local/teller/customer/x":   false,
		"spiffe://bank.local/bank.local/customer": false,
		"spiffe://bank.local/x/customer/y":        false,
	}
	for s, w := range want {
		id, err := spiffeid.FromString(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		m := &matcher{name: "customers", prefix: prefix}
		if got := m.matchID(id); got != w {
			t.Errorf("new matchID(%s) = %v, want %v", s, got, w)
		}
		attack7Compare(t, prefix, id)
	}
	// Spellings go-spiffe refuses never become an ID at all (so never reach a matcher).
	for _, s := range []string{
		"spiffe://bank.local/customer/../teller", "spiffe://bank.local/customer/./x",
		"spiffe://bank.local/customer//x", "spiffe://bank.local/customer/x/",
		"spiffe://bank.local/customer/%2e%2e/teller", "spiffe://bank.local/customer%2fx",
		"spiffe://bank.local:443/customer/x", "spiffe://u@bank.local/customer/x",
		"spiffe://BANK.LOCAL/customer/x", "spiffe://bank.local/customer/x?y", "spiffe://bank.local/customer/x#y",
		"spiffe://bänk.local/customer/x", "spiffe://xn--bnk-qla.local/customer/x\x00",
		"spiffe://bank.local/customer/\u00e4", "SPIFFE://bank.local/customer/x", "spiffe:/bank.local/customer/x",
	} {
		if id, err := spiffeid.FromString(s); err == nil {
			// Accepted (e.g. with -tags spiffeid_charset_backcompat): still old == new.
			t.Logf("go-spiffe accepts %q", s)
			attack7Compare(t, prefix, id)
		}
	}
	// Hand-built IDs: zero, the trust domain's own ID, IDs from segments and paths.
	td := spiffeid.RequireTrustDomainFromString("bank.local")
	attack7Compare(t, prefix, spiffeid.ID{})
	attack7Compare(t, prefix, td.ID())
	for _, segs := range [][]string{{"customer", "x"}, {"customer"}, {"customerx"}, {"customer", "x", "y"}} {
		if id, err := spiffeid.FromSegments(td, segs...); err == nil {
			attack7Compare(t, prefix, id)
		}
	}
	if _, err := spiffeid.FromSegments(td, "customer/x"); err == nil {
		t.Error("FromSegments accepted a slash inside a segment")
	}
	if id, err := prefix.AppendPath("/x"); err != nil || !(&matcher{prefix: prefix}).matchID(id) {
		t.Errorf("AppendPath: %v %v", id, err)
	}
	// A prefix with no path (compile refuses it) still agrees: the whole trust domain.
	attack7Compare(t, td.ID(), spiffeid.RequireFromString("spiffe://bank.local/x"))
	attack7Compare(t, td.ID(), spiffeid.RequireFromString("spiffe://bank.localx/x"))
	attack7Compare(t, td.ID(), td.ID())
}

// TestAttack7CompiledPrefixes compiles spiffe_id_prefix spellings: only the canonical
// ones compile, and a compiled prefix is a parsed ID of the policy's trust domain with a
// non-empty path and no trailing slash, so the new string compare sees exactly
// "spiffe://" + trust domain + path.
func TestAttack7CompiledPrefixes(t *testing.T) {
	spellings := map[string]bool{ // spelling -> compiles
		"spiffe://bank.local/customer/":       true,
		"spiffe://bank.local/customer/gold/":  true,
		"spiffe://bank.local/Customer/":       true,
		"spiffe://bank.local/customer":        false,
		"spiffe://bank.local/":                false,
		"spiffe://bank.local":                 false,
		"spiffe://bank.local//":               false,
		"spiffe://bank.local/customer//":      false,
		"spiffe://bank.local/customer/./":     false,
		"spiffe://bank.local/customer/../":    false,
		"spiffe://bank.local/./":              false,
		"spiffe://bank.local/../":             false,
		"spiffe://bank.local:443/customer/":   false,
		"spiffe://u@bank.local/customer/":     false,
		"spiffe://BANK.LOCAL/customer/":       false,
		"spiffe://bank.local.evil/customer/":  false,
		"spiffe://bank.localcustomer/x/":      false,
		"spiffe://bank.local/%63ustomer/":     false,
		"spiffe://bank.local/customer%2f/":    false,
		"spiffe://bank.local/customer/?/":     false,
		"spiffe://bank.local/customer/x?y=/":  false,
		"spiffe://bank.local/customer/ /":     false,
		"spiffe:///customer/":                 false,
		"bank.local/customer/":                false,
		"/customer/":                          false,
		" spiffe://bank.local/customer/":      false,
		"spiffe://bank.local/customer/\x00/":  false,
		"spiffe://bank.local/cust\u00f6mer/":  false,
		"spiffe://bank.local/customer/x/y/z/": true,
	}
	// go-spiffe built with -tags spiffeid_charset_backcompat takes sub-delims in paths.
	_, err := spiffeid.FromString("spiffe://a/*")
	spellings["spiffe://bank.local/customer/*/"] = err == nil
	for spelling, wantOK := range spellings {
		y := "trust_domain: bank.local\nidentities:\n  - name: p\n    match: { spiffe_id_prefix: " + yamlQuote(spelling) + " }\n    roles: [r]\nroles:\n  r: { methods: [/a.v1.S/M] }\n"
		p, err := ParsePolicy("attack7", []byte(y))
		if (err == nil) != wantOK {
			t.Errorf("%q: compiled = %v (%v), want %v", spelling, err == nil, err, wantOK)
			continue
		}
		if err != nil {
			continue
		}
		m := p.identities[0]
		pre := m.prefix
		if pre.IsZero() || pre.Path() == "" || strings.HasSuffix(pre.String(), "/") ||
			pre.TrustDomain() != p.td || pre.String() != "spiffe://"+p.td.Name()+pre.Path() {
			t.Errorf("%q compiled to an odd prefix %q (path %q)", spelling, pre, pre.Path())
		}
	}
	// Another trust domain in the policy: the prefix must be of that one.
	for _, tc := range []struct {
		td, prefix string
		ok         bool
	}{
		{"bank.local", "spiffe://bank.localx/customer/", false},
		{"bank.localx", "spiffe://bank.local/customer/", false},
		{"bank", "spiffe://bank.local/customer/", false},
		{"bank.local.evil", "spiffe://bank.local.evil/customer/", true},
		{"spiffe://bank.local", "spiffe://bank.local/customer/", false}, // compile refuses any "/" in trust_domain
		{"spiffe://bank.local/x", "spiffe://bank.local/customer/", false},
		{"BANK.local", "spiffe://bank.local/customer/", false},
	} {
		y := "trust_domain: " + yamlQuote(tc.td) + "\nidentities:\n  - name: p\n    match: { spiffe_id_prefix: " + yamlQuote(tc.prefix) + " }\n    roles: [r]\nroles:\n  r: { methods: [/a.v1.S/M] }\n"
		p, err := ParsePolicy("attack7", []byte(y))
		if (err == nil) != tc.ok {
			t.Errorf("td %q prefix %q: compiled = %v (%v), want %v", tc.td, tc.prefix, err == nil, err, tc.ok)
		}
		if err == nil && p.identities[0].prefix.TrustDomain() != p.td {
			t.Errorf("td %q prefix %q: prefix outside the trust domain", tc.td, tc.prefix)
		}
	}
}

func yamlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\x`)
			b.WriteString(string("0123456789abcdef"[r>>4]) + string("0123456789abcdef"[r&15]))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// attack7Policy mixes every matcher kind over the same IDs: prefixes nested in each
// other, an exact ID equal to a prefix's own ID, globs that overlap prefixes, a subject
// field entry, and a delegate whose end users get on_behalf grants only via prefixes.
const attack7Policy = `trust_domain: bank.local
identities:
  - name: customers
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/" }
    roles: [customer]
  - name: gold customers
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/gold/" }
    roles: [gold]
  - name: the customer path itself
    match: { spiffe_id: "spiffe://bank.local/customer" }
    roles: [odd]
  - name: glob customers
    match: { spiffe_id_glob: "spiffe://bank.local/customer/*" }
    roles: [globbed]
  - name: prefix and glob
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/", spiffe_id_glob: "spiffe://bank.local/*/vip" }
    roles: [vip]
  - name: prefix and CN
    match: { spiffe_id_prefix: "spiffe://bank.local/teller/", subject_cn: "teller" }
    roles: [teller]
  - name: gateway
    match: { spiffe_id: "spiffe://bank.local/service/gateway" }
    roles: [gateway]
roles:
  customer: { methods: [/a.v1.S/Get], on_behalf: { methods: [/a.v1.S/Pay] } }
  gold: { methods: [/a.v1.S/Gold], on_behalf: { scope: any, methods: [/a.v1.S/Pay, /a.v1.S/Gold] } }
  odd: { methods: [/a.v1.S/Odd] }
  globbed: { methods: [/a.v1.S/Glob] }
  vip: { methods: [/a.v1.S/Vip], on_behalf: { methods: [/a.v1.S/Vip] } }
  teller: { scope: any, methods: [/a.v1.S/Get, /a.v1.S/Teller] }
  gateway: { delegate: true, methods: [/a.v1.S/Pay, /a.v1.S/Gold, /a.v1.S/Vip] }
`

// TestAttack7CertificatesAndDelegation issues certificates with odd URI SANs, derives
// identities as the server does, and hands end-user IDs over x-bank-on-behalf-of: every
// entry of a policy mixing all matcher kinds must match the same callers and end users
// under the old formula and the new, and Decide must agree with the old formula's roles.
func TestAttack7CertificatesAndDelegation(t *testing.T) {
	pol, err := ParsePolicy("attack7", []byte(attack7Policy))
	if err != nil {
		t.Fatal(err)
	}
	p := pkitest.New(t)
	td := spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)
	uris := []string{
		"spiffe://bank.local/customer/alice", "spiffe://bank.local/customer/gold/g", "spiffe://bank.local/customer/gold",
		"spiffe://bank.local/customer", "spiffe://bank.local/customer/vip", "spiffe://bank.local/customer/x/vip",
		"spiffe://bank.local/customerx/alice", "spiffe://bank.local/teller/tina", "spiffe://bank.local/teller",
		"spiffe://bank.local/customer/../teller/t", "spiffe://bank.local/customer/%2e%2e/teller",
		"spiffe://bank.local/customer%2Falice", "spiffe://bank.local//customer/alice", "spiffe://bank.local/customer//a",
		"spiffe://bank.local/customer/./a", "spiffe://bank.local/customer/a/", "spiffe://bank.local:8443/customer/a",
		"spiffe://u@bank.local/customer/a", "spiffe://u:p@bank.local/customer/a", "spiffe://BANK.LOCAL/customer/a",
		"spiffe://Bank.Local/customer/a", "spiffe://bank.local./customer/a", "spiffe://bank.local.evil/customer/a",
		"spiffe://bank.localcustomer/a", "spiffe://bank.local/Customer/a", "spiffe://bank.local/customer/a?x=1",
		"spiffe://bank.local/customer/a#f", "spiffe://xn--bnk-qla.local/customer/a", "spiffe://bänk.local/customer/a",
		"spiffe://bank.local/customer/%61lice", "spiffe://bank.local/%63ustomer/a", "spiffe:bank.local/customer/a",
		"spiffe:///bank.local/customer/a", "SPIFFE://bank.local/customer/a", "spiffe://bank.local/customer/...",
		"spiffe://bank.local/customer/.a", "spiffe://bank.local/customer/gold/..", "spiffe://bank.local/service/gateway",
	}
	type caller struct {
		uri string
		id  identity.Identity
	}
	var callers []caller
	for _, u := range uris {
		for _, cn := range []string{"x", "teller"} {
			leaf, err := p.Intermediate.Issue(pki.Request{CommonName: cn, SPIFFEIDs: []string{u}, Usage: pki.ClientAuth})
			if err != nil {
				t.Logf("%q: not issued: %v", u, err)
				continue
			}
			id, err := identity.FromCertificate(leaf.Cert, td)
			if err != nil {
				continue
			}
			if cn == "x" && id.ID.String() != u {
				t.Logf("URI SAN %q became the ID %q", u, id.ID)
			}
			callers = append(callers, caller{u, id})
		}
	}
	// Hand-built identities (tests and tools build them): zero, trust domain only, other TD.
	callers = append(callers,
		caller{"zero", identity.Identity{}},
		caller{"td only", identity.Identity{ID: td.ID()}},
		caller{"other td", identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local.evil/customer/a")}},
	)
	accepted := map[string]bool{}
	for _, c := range callers {
		accepted[c.id.ID.String()] = true
		for _, m := range pol.identities {
			if got, want := m.match(&c.id), oldMatch(m, &c.id); got != want {
				t.Errorf("caller %q (ID %q), entry %q: new %v, old %v", c.uri, c.id.ID, m.name, got, want)
			}
		}
		inTD := !c.id.ID.IsZero() && c.id.ID.MemberOf(pol.td)
		var wantRoles []string
		if inTD {
			var entries []*matcher
			for _, m := range pol.identities {
				if oldMatch(m, &c.id) {
					entries = append(entries, m)
				}
			}
			wantRoles, _ = pol.rolesOfEntries(entries)
		}
		for _, method := range []string{"/a.v1.S/Get", "/a.v1.S/Gold", "/a.v1.S/Odd", "/a.v1.S/Glob", "/a.v1.S/Vip", "/a.v1.S/Teller", "/a.v1.S/Pay"} {
			d := pol.Decide(c.id, method)
			if strings.Join(d.Roles, " ") != strings.Join(wantRoles, " ") {
				t.Errorf("caller %q, %s: roles %v, old formula %v", c.uri, method, d.Roles, wantRoles)
			}
		}
	}
	t.Logf("%d caller identities accepted from %d URI SANs", len(callers), len(uris))
	if !accepted["spiffe://bank.local/customer/alice"] || accepted["spiffe://bank.local/customer/../teller/t"] {
		t.Fatal("identity derivation is not what this test assumes")
	}

	// Delegated end users: the x-bank-on-behalf-of value goes through spiffeid.FromString.
	gw := identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local/service/gateway")}
	values := append([]string{}, uris...)
	values = append(values, "", " spiffe://bank.local/customer/a", "spiffe://bank.local/customer/a ",
		"spiffe://bank.local/customer/a\n", "spiffe://bank.local/customer/a\x00", "spiffe://bank.local")
	for _, v := range values {
		sid, perr := spiffeid.FromString(v)
		for _, m := range pol.identities {
			if perr != nil {
				continue
			}
			if got, want := m.matchSubject(sid), m.subjectOnly() && oldMatchID(m, sid); got != want {
				t.Errorf("end user %q, entry %q: new %v, old %v", v, m.name, got, want)
			}
		}
		for _, method := range []string{"/a.v1.S/Pay", "/a.v1.S/Gold", "/a.v1.S/Vip"} {
			d := pol.Decide(gw, method, v)
			wantAllowed := false
			if perr == nil && sid.MemberOf(pol.td) {
				var entries []*matcher
				for _, m := range pol.identities {
					if m.subjectOnly() && oldMatchID(m, sid) {
						entries = append(entries, m)
					}
				}
				wantAllowed = pol.subjectOutcome(entries, pol.onBehalfGranting(method), method).allowed
			}
			if d.Allowed != wantAllowed {
				t.Errorf("gateway %s on behalf of %q: allowed %v, old formula %v (%s)", method, v, d.Allowed, wantAllowed, d.Rule)
			}
			if d.Allowed && (d.OnBehalfOf == nil || d.OnBehalfOf.ID.String() != v) {
				t.Errorf("gateway %s on behalf of %q: end user %v", method, v, d.OnBehalfOf)
			}
		}
	}
	// Spot checks of the intended semantics.
	for _, tc := range []struct {
		obo, method string
		allowed     bool
	}{
		{"spiffe://bank.local/customer/alice", "/a.v1.S/Pay", true},
		{"spiffe://bank.local/customer", "/a.v1.S/Pay", false},
		{"spiffe://bank.local/customerx/alice", "/a.v1.S/Pay", false},
		{"spiffe://bank.local.evil/customer/alice", "/a.v1.S/Pay", false},
		{"spiffe://bank.local/customer/gold/g", "/a.v1.S/Gold", true},
		{"spiffe://bank.local/customer/gold", "/a.v1.S/Gold", false},
		{"spiffe://bank.local/customer/x/vip", "/a.v1.S/Vip", false}, // glob * is one segment
		{"spiffe://bank.local/customer/vip", "/a.v1.S/Vip", true},
		{"spiffe://bank.local/teller/tina", "/a.v1.S/Pay", false}, // CN entry never matches an end user
	} {
		if d := pol.Decide(gw, tc.method, tc.obo); d.Allowed != tc.allowed {
			t.Errorf("gateway %s on behalf of %s: allowed %v, want %v (%s)", tc.method, tc.obo, d.Allowed, tc.allowed, d.Rule)
		}
	}
}

// TestAttack7RealPolicies runs the shipped policies' entries over the generated IDs.
func TestAttack7RealPolicies(t *testing.T) {
	for _, file := range []string{"../../services/accounts/policy.yaml", "../../services/payments/policy.yaml"} {
		pol, err := LoadPolicy(file)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewSource(77))
		segs := []string{"customer", "teller", "auditor", "service", "payments", "accounts", "alice", "x", "customerx", "teller.", "..."}
		tds := []string{"bank.local", "bank.localx", "bank.local.evil", "bank", "x.bank.local"}
		for i := 0; i < 20000; i++ {
			s := "spiffe://" + tds[rng.Intn(len(tds))]
			for n := 1 + rng.Intn(4); n > 0; n-- {
				s += "/" + segs[rng.Intn(len(segs))]
			}
			id, err := spiffeid.FromString(s)
			if err != nil {
				continue
			}
			ident := identity.Identity{ID: id}
			for _, m := range pol.identities {
				if got, want := m.match(&ident), oldMatch(m, &ident); got != want {
					t.Fatalf("%s: %q, entry %q: new %v, old %v", file, id, m.name, got, want)
				}
			}
		}
	}
}
