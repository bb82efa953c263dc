package authz

import (
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"
)

// methodRE is a full gRPC method name, or a whole service with "*".
var methodRE = regexp.MustCompile(`^/[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/([A-Za-z_][A-Za-z0-9_]*|\*)$`)

// compiler turns a rawPolicy into a Policy, collecting every problem with its line.
type compiler struct {
	name string
	loc  locator
	errs []error
}

func (c *compiler) errorf(line int, format string, args ...any) {
	c.errs = append(c.errs, &LineError{File: c.name, Line: line, Reason: fmt.Sprintf(format, args...)})
}

func (c *compiler) compile(raw *rawPolicy) *Policy {
	p := &Policy{name: c.name, roles: make(map[string]*role), grants: make(map[string][]*role), onBehalf: make(map[string][]*role)}
	td, err := spiffeid.TrustDomainFromString(raw.TrustDomain)
	switch {
	case raw.TrustDomain == "":
		c.errorf(c.loc.line(), "trust_domain is required")
	case err != nil || strings.Contains(raw.TrustDomain, "/"):
		c.errorf(c.loc.line("trust_domain"), "trust_domain %q is not a trust domain name", raw.TrustDomain)
	default:
		p.td = td
	}
	c.compileRoles(p, raw.Roles)
	c.compileIdentities(p, raw.Identities)
	return p
}

func (c *compiler) compileRoles(p *Policy, raws map[string]rawRole) {
	names := make([]string, 0, len(raws))
	for name := range raws {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := raws[name]
		line := c.loc.line("roles", name)
		out := &role{name: name, delegate: r.Delegate}
		out.scopeAny = c.scope(r.Scope, fmt.Sprintf("role %q", name), "roles", name, "scope")
		switch {
		case len(r.Methods) == 0 && r.OnBehalf == nil:
			c.errorf(line, "role %q grants no methods", name)
		case len(r.Methods) == 0 && r.Delegate:
			c.errorf(line, "role %q may delegate but grants no methods to delegate", name)
		}
		if name == ImplicitRole && r.Delegate {
			// Every identity of the trust domain holds it: anyone could name an end user.
			c.errorf(c.loc.line("roles", name, "delegate"), "role %q may not delegate: every identity of the trust domain holds it", name)
		}
		out.patterns = c.methods(p.grants, out, r.Methods, fmt.Sprintf("role %q", name), "roles", name, "methods")
		if ob := r.OnBehalf; ob != nil {
			label := fmt.Sprintf("role %q on_behalf", name)
			switch {
			case name == ImplicitRole:
				// It would let a delegate act for identities the policy does not know.
				c.errorf(c.loc.line("roles", name, "on_behalf"), "%s: not allowed: every identity of the trust domain holds %q, known or not", label, ImplicitRole)
			case len(ob.Methods) == 0:
				c.errorf(c.loc.line("roles", name, "on_behalf"), "%s grants no methods", label)
			}
			out.onBehalfAny = c.scope(ob.Scope, label, "roles", name, "on_behalf", "scope")
			out.onBehalfPatterns = c.methods(p.onBehalf, out, ob.Methods, label, "roles", name, "on_behalf", "methods")
		}
		p.roles[name] = out
	}
}

// scope parses a scope ("" is own) and reports whether it is ScopeAny; at locates it.
func (c *compiler) scope(s, label string, at ...any) bool {
	switch s {
	case ScopeAny:
		return true
	case ScopeOwn, "":
		return false
	}
	c.errorf(c.loc.line(at...), "%s: scope %q (want %q or %q)", label, s, ScopeAny, ScopeOwn)
	return false
}

// methods validates the method patterns of one list (at locates it) and records r under
// each in grants.
func (c *compiler) methods(grants map[string][]*role, r *role, methods []string, label string, at ...any) []string {
	var out []string
	seen := make(map[string]bool)
	for i, m := range methods {
		line := c.loc.line(append(at, i)...)
		if !methodRE.MatchString(m) {
			c.errorf(line, "%s: %q is not a full method name (/pkg.Service/Method or /pkg.Service/*)", label, m)
			continue
		}
		if seen[m] {
			c.errorf(line, "%s: method %q listed twice", label, m)
			continue
		}
		seen[m] = true
		out = append(out, m)
		grants[m] = append(grants[m], r)
	}
	return out
}

func (c *compiler) compileIdentities(p *Policy, raws []rawIdentity) {
	names := make(map[string]bool)
	for i, r := range raws {
		line := c.loc.line("identities", i)
		label := fmt.Sprintf("identity %d", i+1)
		switch {
		case r.Name == "":
			c.errorf(line, "%s: name is required", label)
		case names[r.Name]:
			c.errorf(c.loc.line("identities", i, "name"), "identity %q defined twice", r.Name)
		default:
			label = fmt.Sprintf("identity %q", r.Name)
		}
		names[r.Name] = true
		m := &matcher{name: r.Name}
		c.compileMatch(p, m, r.Match, label, i)
		if len(r.Roles) == 0 {
			c.errorf(line, "%s maps to no roles", label)
		}
		for j, rn := range r.Roles {
			if _, ok := p.roles[rn]; !ok && rn != ImplicitRole {
				c.errorf(c.loc.line("identities", i, "roles", j), "%s: unknown role %q", label, rn)
				continue
			}
			m.roles = append(m.roles, rn)
		}
		p.identities = append(p.identities, m)
	}
}

func (c *compiler) compileMatch(p *Policy, m *matcher, r rawMatch, label string, i int) {
	at := func(field string) int { return c.loc.line("identities", i, "match", field) }
	n := 0
	if r.SPIFFEID != "" {
		n++
		id, err := spiffeid.FromString(r.SPIFFEID)
		if err != nil {
			c.errorf(at("spiffe_id"), "%s: spiffe_id %q: %v", label, r.SPIFFEID, err)
		} else if c.checkTD(p, id, at("spiffe_id"), label) {
			m.id = id
		}
	}
	if r.SPIFFEIDPrefix != "" {
		n++
		trimmed, slash := strings.CutSuffix(r.SPIFFEIDPrefix, "/")
		id, err := spiffeid.FromString(trimmed)
		switch {
		case err != nil:
			c.errorf(at("spiffe_id_prefix"), "%s: spiffe_id_prefix %q: %v", label, r.SPIFFEIDPrefix, err)
		case id.Path() == "":
			c.errorf(at("spiffe_id_prefix"), "%s: spiffe_id_prefix %q needs a path (to match the whole trust domain, list the role under %q)", label, r.SPIFFEIDPrefix, ImplicitRole)
		case !slash:
			// Written out so that the file says what it matches: what is under the path.
			c.errorf(at("spiffe_id_prefix"), "%s: spiffe_id_prefix %q must end with \"/\": it matches the IDs under that path, never the path itself (use spiffe_id for one ID)", label, r.SPIFFEIDPrefix)
		case c.checkTD(p, id, at("spiffe_id_prefix"), label):
			m.prefix = id
		}
	}
	if r.SPIFFEIDGlob != "" {
		n++
		want := "spiffe://" + p.td.Name() + "/"
		if _, err := path.Match(r.SPIFFEIDGlob, ""); err != nil {
			c.errorf(at("spiffe_id_glob"), "%s: spiffe_id_glob %q: %v", label, r.SPIFFEIDGlob, err)
		} else if !p.td.IsZero() && !strings.HasPrefix(r.SPIFFEIDGlob, want) {
			c.errorf(at("spiffe_id_glob"), "%s: spiffe_id_glob %q must start with %q", label, r.SPIFFEIDGlob, want)
		} else {
			m.glob = r.SPIFFEIDGlob
		}
	}
	if r.SubjectCN != "" {
		n++
		m.cn = r.SubjectCN
	}
	if r.SubjectOU != "" {
		n++
		m.ou = r.SubjectOU
	}
	if r.DNSSAN != "" {
		n++
		m.dns = strings.ToLower(r.DNSSAN)
	}
	if r.FingerprintSHA256 != "" {
		n++
		fp, err := hex.DecodeString(strings.ReplaceAll(r.FingerprintSHA256, ":", ""))
		if err != nil || len(fp) != 32 {
			c.errorf(at("fingerprint_sha256"), "%s: fingerprint_sha256 must be 32 bytes of hex", label)
		} else {
			m.fingerprint = (*[32]byte)(fp)
		}
	}
	if n == 0 {
		c.errorf(c.loc.line("identities", i), "%s: match needs at least one of spiffe_id, spiffe_id_prefix, spiffe_id_glob, subject_cn, subject_ou, dns_san, fingerprint_sha256", label)
	}
}

func (c *compiler) checkTD(p *Policy, id spiffeid.ID, line int, label string) bool {
	if !p.td.IsZero() && !id.MemberOf(p.td) {
		c.errorf(line, "%s: %s is outside trust domain %s", label, id, p.td)
		return false
	}
	return true
}

// locator finds the line of a node in a parsed YAML document by a path of mapping keys
// (string) and sequence indexes (int); it falls back to the deepest node it found.
type locator struct{ root *yaml.Node }

func (l locator) line(pathElems ...any) int {
	n := l.root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, e := range pathElems {
		key, value := child(n, e)
		if value == nil {
			break
		}
		n, line = value, value.Line
		if key != nil {
			line = key.Line // a mapping entry is reported where its key is
		}
	}
	return line
}

// child returns the mapping entry (key and value) named by a string, or the sequence
// item at an int index (nil key).
func child(n *yaml.Node, e any) (key, value *yaml.Node) {
	switch k := e.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil, nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				return n.Content[i], n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && k >= 0 && k < len(n.Content) {
			return nil, n.Content[k]
		}
	}
	return nil, nil
}
