package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
)

// ErrMalformedMethod means a method name is not a full gRPC method name
// ("/pkg.Service/Method").
var ErrMalformedMethod = errors.New("not a full method name (/pkg.Service/Method)")

// Explanation is a Decision together with the policy facts behind it, for a person asking
// why (bankctl policy check). The decision is the one Decide returns; the facts are read
// from the same compiled policy and never decide anything themselves.
type Explanation struct {
	// Decision is what Decide returned for the same arguments.
	Decision Decision
	// Method is the full method name explained.
	Method string
	// Entries are the identity entries the caller matches, in policy order.
	Entries []EntryMatch
	// Unsatisfied are the entries whose SPIFFE ID criteria the caller satisfies but whose
	// other criteria (subject_cn, subject_ou, dns_san, fingerprint_sha256) it does not:
	// for an identity known only by its SPIFFE ID, the entries a real certificate might
	// still match.
	Unsatisfied []EntryMatch
	// Grants are the rules ("methods") granting Method, exact ones first.
	Grants []Grant
	// OnBehalf explains the end user of a delegated call; nil when none was named.
	OnBehalf *SubjectExplanation
}

// EntryMatch is one identity entry and the roles it gives.
type EntryMatch struct {
	Name  string
	Roles []string
}

// Grant is one role's rule naming a method.
type Grant struct {
	// Role is the role whose rule it is.
	Role string
	// Pattern is the rule's method pattern: the method itself or "/pkg.Service/*".
	Pattern string
	// Scope is ScopeAny or ScopeOwn.
	Scope string
	// Delegate is set when the role may delegate the method (methods rules only).
	Delegate bool
	// Held is set when the caller (for on_behalf rules: the end user) holds the role.
	Held bool
}

// SubjectExplanation is the end user a delegating caller names.
type SubjectExplanation struct {
	// Values are the x-bank-on-behalf-of values as given.
	Values []string
	// ID is the end user, zero when Values is not exactly one SPIFFE ID of the trust domain.
	ID spiffeid.ID
	// Entries are the identity entries the end user matches (SPIFFE ID criteria only).
	Entries []EntryMatch
	// Roles are the end user's roles, sorted, without ImplicitRole.
	Roles []string
	// Grants are the on_behalf rules granting the method, exact ones first.
	Grants []Grant
}

// Explain decides like Decide and explains the decision: the identity entries the caller
// (and the end user) match, their roles, and every rule naming fullMethod, held or not.
// fullMethod must be a full method name; anything else is ErrMalformedMethod.
func (p *Policy) Explain(id identity.Identity, fullMethod string, onBehalfOf ...string) (Explanation, error) {
	if !methodRE.MatchString(fullMethod) || strings.HasSuffix(fullMethod, "/*") {
		return Explanation{}, fmt.Errorf("method %q: %w", fullMethod, ErrMalformedMethod)
	}
	e := Explanation{Decision: p.Decide(id, fullMethod, onBehalfOf...), Method: fullMethod}
	inTD := !id.ID.IsZero() && id.ID.MemberOf(p.td)
	held := map[string]bool{ImplicitRole: true}
	for _, m := range p.identities {
		switch {
		case !inTD:
		case m.match(&id):
			e.Entries = append(e.Entries, EntryMatch{Name: m.name, Roles: slices.Clone(m.roles)})
			for _, r := range m.roles {
				held[r] = true
			}
		case m.matchID(id.ID):
			e.Unsatisfied = append(e.Unsatisfied, EntryMatch{Name: m.name, Roles: slices.Clone(m.roles)})
		}
	}
	if !inTD {
		held = nil
	}
	e.Grants = grantsOf(p.grants, fullMethod, held, false)
	if len(onBehalfOf) > 0 {
		e.OnBehalf = p.explainSubject(fullMethod, onBehalfOf)
	}
	return e, nil
}

// explainSubject gathers the facts about the end user named in values.
func (p *Policy) explainSubject(fullMethod string, values []string) *SubjectExplanation {
	s := &SubjectExplanation{Values: slices.Clone(values)}
	var held map[string]bool
	if len(values) == 1 {
		if sid, err := spiffeid.FromString(values[0]); err == nil && sid.MemberOf(p.td) {
			s.ID = sid
			entries := p.subjectEntries(sid)
			for _, m := range entries {
				s.Entries = append(s.Entries, EntryMatch{Name: m.name, Roles: slices.Clone(m.roles)})
			}
			s.Roles, _ = p.rolesOfEntries(entries)
			held = make(map[string]bool)
			for _, r := range s.Roles {
				held[r] = true
			}
		}
	}
	s.Grants = grantsOf(p.onBehalf, fullMethod, held, true)
	return s
}

// grantsOf describes the rules in grants (p.grants, or p.onBehalf when onBehalf) naming
// fullMethod, exactly or through its service's wildcard; held are the roles of the caller.
func grantsOf(grants map[string][]*role, fullMethod string, held map[string]bool, onBehalf bool) []Grant {
	var out []Grant
	for _, pattern := range []string{fullMethod, serviceWildcard(fullMethod)} {
		for _, r := range grants[pattern] {
			g := Grant{Role: r.name, Pattern: pattern, Scope: ScopeOwn, Held: held[r.name]}
			if (!onBehalf && r.scopeAny) || (onBehalf && r.onBehalfAny) {
				g.Scope = ScopeAny
			}
			if !onBehalf {
				g.Delegate = r.delegate
			}
			out = append(out, g)
		}
	}
	return out
}
