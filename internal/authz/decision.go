package authz

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
)

// OnBehalfOfKey is the request metadata key in which a delegating caller (the payments
// service) names the end user it acts for, as a SPIFFE ID.
const OnBehalfOfKey = "x-bank-on-behalf-of"

// Subject is an end user named by a delegating caller.
type Subject struct {
	// ID is the end user's SPIFFE ID.
	ID spiffeid.ID
	// Roles are the end user's roles under the same policy (SPIFFE ID matchers only),
	// sorted, without ImplicitRole. Shared like Decision.Roles: read only.
	Roles []string
	// OwnOnly is true unless one of Roles has scope any.
	OwnOnly bool
}

// Decision is the outcome of authorizing one call.
type Decision struct {
	// Allowed is true when the call may proceed.
	Allowed bool
	// Identity is the caller, from its verified certificate.
	Identity identity.Identity
	// Roles are the caller's roles from the policy's identity entries, sorted; ImplicitRole,
	// which every identity of the trust domain holds, is not listed. The slice may be
	// shared with the policy and other decisions: read it, never modify it in place.
	Roles []string
	// Rule says which identity entry and role allowed the call, or why it was denied.
	// It is for the audit log only, never for the client.
	Rule string
	// OwnOnly is true when every role of the caller granting this method has scope own.
	OwnOnly bool
	// OnBehalfOf is the end user named by a caller allowed to delegate, nil otherwise.
	OnBehalfOf *Subject
}

// Principal returns the subject whose ownership handlers must check: the delegated end
// user if there is one, else the caller; ownOnly says whether the check applies.
func (d Decision) Principal() (owner spiffeid.ID, ownOnly bool) {
	if d.OnBehalfOf != nil {
		return d.OnBehalfOf.ID, d.OnBehalfOf.OwnOnly
	}
	return d.Identity.ID, d.OwnOnly
}

type decisionKey struct{}

// NewContext returns a copy of ctx carrying d (the interceptor does this for handlers).
func NewContext(ctx context.Context, d Decision) context.Context {
	return context.WithValue(ctx, decisionKey{}, d)
}

// FromContext returns the decision that let the current call through.
func FromContext(ctx context.Context) (Decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(Decision)
	return d, ok
}

// Decide authorizes the certificate identity id to call fullMethod. onBehalfOf holds the
// values of the OnBehalfOfKey metadata, if any: they are honoured only from a caller holding
// a role with delegate: true, must be exactly one SPIFFE ID of the trust domain, and
// otherwise deny the call. The end user's own rights are not checked here: the handler checks
// ownership against Decision.Principal.
//
// Every RPC pays for Decide, so the usual case, a caller matched by at most one identity
// entry calling a method the policy names, reads an outcome precomputed when the policy was
// compiled (fastpath.go) and allocates nothing; delegation adds the Subject and its rule.
// Anything else takes the general path, which gives the same answers.
func (p *Policy) Decide(id identity.Identity, fullMethod string, onBehalfOf ...string) Decision {
	d := Decision{Identity: id}
	if id.ID.IsZero() || !id.ID.MemberOf(p.td) {
		d.Rule = fmt.Sprintf("identity %q outside trust domain %s", id.ID, p.td)
		return d
	}
	o, ok := p.precomputed(&id, fullMethod)
	if !ok {
		roles, via := p.rolesOf(&id)
		o = p.outcome(roles, via, p.granting(fullMethod), fullMethod)
	}
	d.Roles = o.roles
	d.Rule = o.rule
	if !o.allowed {
		return d
	}
	d.OwnOnly = o.ownOnly
	if len(onBehalfOf) > 0 {
		subject, reason := p.delegate(o, onBehalfOf)
		if subject == nil {
			d.Rule = reason
			return d
		}
		d.OnBehalfOf = subject
		d.Rule += ", on behalf of " + subject.ID.String()
	}
	d.Allowed = true
	return d
}

// outcome is what Decide concludes from the caller's roles and the method, before any
// delegation. Its fields are shared by every Decision made from it: read only.
type outcome struct {
	roles    []string // the caller's roles, sorted, without ImplicitRole
	rule     string   // the grants, or why none applies
	allowed  bool
	ownOnly  bool // every granting role the caller holds has scope own
	delegate bool // a role the caller holds (ImplicitRole included) may delegate
}

// outcome decides for a caller holding roles (via: the identity entry behind each role)
// calling fullMethod, which the roles in granting grant.
func (p *Policy) outcome(roles []string, via map[string]string, granting []*role, fullMethod string) outcome {
	o := outcome{roles: slices.Clip(roles), ownOnly: true}
	held := map[string]bool{ImplicitRole: true}
	for _, r := range roles {
		held[r] = true
	}
	for r := range held {
		if pr := p.roles[r]; pr != nil && pr.delegate {
			o.delegate = true
		}
	}
	var grants []string
	for _, r := range granting {
		if !held[r.name] {
			continue
		}
		grants = append(grants, fmt.Sprintf("%s -> role %q", via[r.name], r.name))
		o.ownOnly = o.ownOnly && !r.scopeAny
	}
	if len(grants) == 0 {
		o.rule = fmt.Sprintf("no role of [%s] grants %s", strings.Join(roles, " "), fullMethod)
		o.ownOnly = false
		return o
	}
	o.allowed = true
	o.rule = strings.Join(grants, ", ")
	return o
}

// delegate validates the on-behalf-of values sent by a caller whose outcome is o,
// returning the subject or the reason for refusing.
func (p *Policy) delegate(o outcome, values []string) (*Subject, string) {
	if !o.delegate {
		return nil, fmt.Sprintf("%s metadata from roles [%s], none of which may delegate", OnBehalfOfKey, strings.Join(o.roles, " "))
	}
	if len(values) != 1 {
		return nil, fmt.Sprintf("%s metadata has %d values, want 1", OnBehalfOfKey, len(values))
	}
	sid, err := spiffeid.FromString(values[0])
	if err != nil {
		return nil, fmt.Sprintf("%s %q: %v", OnBehalfOfKey, values[0], err)
	}
	if !sid.MemberOf(p.td) {
		return nil, fmt.Sprintf("%s %s outside trust domain %s", OnBehalfOfKey, sid, p.td)
	}
	s := p.precomputedSubject(sid)
	if s == nil {
		s = p.subject(p.subjectEntries(sid))
	}
	out := *s
	out.ID = sid
	return &out, ""
}

// subjectEntries returns the identity entries a delegated end user, known only by its
// SPIFFE ID, matches.
func (p *Policy) subjectEntries(sid spiffeid.ID) []*matcher {
	var entries []*matcher
	for _, m := range p.identities {
		if m.matchSubject(sid) {
			entries = append(entries, m)
		}
	}
	return entries
}

// subject returns the roles and scope (not the ID) of an end user matched by entries.
func (p *Policy) subject(entries []*matcher) *Subject {
	s := &Subject{OwnOnly: true}
	seen := map[string]bool{ImplicitRole: true} // implied, never listed
	for _, m := range entries {
		s.Roles = appendNew(s.Roles, seen, m.roles...)
	}
	sort.Strings(s.Roles)
	s.Roles = slices.Clip(s.Roles)
	for _, r := range append([]string{ImplicitRole}, s.Roles...) {
		if pr := p.roles[r]; pr != nil && pr.scopeAny {
			s.OwnOnly = false
		}
	}
	return s
}

// rolesOf returns the caller's roles, sorted and without ImplicitRole, and for each role
// (ImplicitRole included) the identity entry that gave it (for the audit rule).
func (p *Policy) rolesOf(id *identity.Identity) ([]string, map[string]string) {
	var entries []*matcher
	for _, m := range p.identities {
		if m.match(id) {
			entries = append(entries, m)
		}
	}
	return p.rolesOfEntries(entries)
}

// rolesOfEntries is rolesOf for a caller matched by entries.
func (p *Policy) rolesOfEntries(entries []*matcher) ([]string, map[string]string) {
	var roles []string
	seen := map[string]bool{ImplicitRole: true} // implied, never listed
	via := make(map[string]string)
	for _, m := range entries {
		for _, r := range m.roles {
			if _, ok := via[r]; !ok {
				via[r] = fmt.Sprintf("identity %q", m.name)
			}
		}
		roles = appendNew(roles, seen, m.roles...)
	}
	if _, ok := via[ImplicitRole]; !ok {
		via[ImplicitRole] = "every identity of " + p.td.Name()
	}
	sort.Strings(roles)
	return roles, via
}

func appendNew(dst []string, seen map[string]bool, values ...string) []string {
	for _, v := range values {
		if !seen[v] {
			seen[v] = true
			dst = append(dst, v)
		}
	}
	return dst
}
