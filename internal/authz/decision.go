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

// Subject is an end user named by a delegating caller, whose own rights bound the call.
type Subject struct {
	// ID is the end user's SPIFFE ID.
	ID spiffeid.ID
	// Roles are the end user's roles under the same policy (SPIFFE ID matchers only),
	// sorted, without ImplicitRole. Shared like Decision.Roles: read only.
	Roles []string
	// OwnOnly is true unless a role of the end user grants the method on_behalf with
	// scope any: the call may then touch only resources the end user owns.
	OwnOnly bool
	// Rule says which identity entry and on_behalf rule let a delegate act for the end
	// user. It is for the audit log only, never for the client.
	Rule string
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
// user if there is one, else the caller; ownOnly says whether the check applies. On behalf
// of an end user the scope is that of the end user's on_behalf rule for the method, never
// the delegate's own.
func (d Decision) Principal() (owner spiffeid.ID, ownOnly bool) {
	if d.OnBehalfOf != nil {
		return d.OnBehalfOf.ID, d.OnBehalfOf.OwnOnly
	}
	return d.Identity.ID, d.OwnOnly
}

type decisionKey struct{}

// NewContext returns a copy of ctx carrying d and its identity (identity.FromContext):
// the interceptor does this for handlers.
func NewContext(ctx context.Context, d Decision) context.Context {
	return newContext(ctx, &d)
}

// newContext keeps d, which must not change afterwards; the identity context points
// into it (one allocation for both).
func newContext(ctx context.Context, d *Decision) context.Context {
	return identity.NewContext(context.WithValue(ctx, decisionKey{}, d), &d.Identity)
}

// FromContext returns the decision that let the current call through.
func FromContext(ctx context.Context) (Decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(*Decision)
	if !ok || d == nil {
		return Decision{}, false
	}
	return *d, true
}

// Decide authorizes the certificate identity id to call fullMethod. onBehalfOf holds the
// values of the OnBehalfOfKey metadata, if any. A call naming an end user is allowed only
// when all of these hold, and denied otherwise:
//   - a role of the caller granting fullMethod has delegate: true (it may delegate it);
//   - the metadata is exactly one SPIFFE ID of the trust domain;
//   - that end user matches an identity entry (SPIFFE ID criteria only) and so holds a role;
//   - one of the end user's roles grants fullMethod in its on_behalf rule.
//
// The Decision then names the end user (OnBehalfOf) with the scope of that on_behalf rule,
// and handlers check ownership against the end user (Decision.Principal), so a delegate can
// never do for someone more than that person's role lets a delegate do for them.
//
// Every RPC pays for Decide, so the usual case, a caller (and end user) matched by at most
// one identity entry calling a method the policy names, reads outcomes precomputed when the
// policy was compiled (fastpath.go); without delegation it allocates nothing, with it only
// the Subject and its rule. Anything else takes the general path, which gives the same
// answers.
func (p *Policy) Decide(id identity.Identity, fullMethod string, onBehalfOf ...string) Decision {
	var d Decision
	p.decide(&d, &id, fullMethod, onBehalfOf)
	return d
}

// decide is Decide into d, which must be the zero Decision; the authorizer decides into
// a Decision on the heap, without copying the identity or the Decision on the way.
func (p *Policy) decide(d *Decision, id *identity.Identity, fullMethod string, onBehalfOf []string) {
	d.Identity = *id
	if id.ID.IsZero() || !id.ID.MemberOf(p.td) {
		d.Rule = fmt.Sprintf("identity %q outside trust domain %s", id.ID, p.td)
		return
	}
	o, ok := p.precomputed(id, fullMethod)
	if !ok {
		roles, via := p.rolesOf(id)
		o = p.outcome(roles, via, p.granting(fullMethod), fullMethod)
	}
	d.Roles = o.roles
	d.Rule = o.rule
	if !o.allowed {
		return
	}
	d.OwnOnly = o.ownOnly
	if len(onBehalfOf) > 0 {
		subject, reason := p.delegate(o, fullMethod, onBehalfOf)
		if subject == nil {
			d.Rule = reason
			return
		}
		d.OnBehalfOf = subject
		d.Rule = o.delegateRule + ", on behalf of " + subject.ID.String() + ": " + subject.Rule
	}
	d.Allowed = true
}

// outcome is what Decide concludes from the caller's roles and the method, before any
// delegation. Its fields are shared by every Decision made from it: read only.
type outcome struct {
	roles        []string // the caller's roles, sorted, without ImplicitRole
	rule         string   // the grants, or why none applies
	allowed      bool
	ownOnly      bool   // every granting role the caller holds has scope own
	delegable    bool   // a granting role the caller holds may delegate
	delegateRule string // the grants of those roles, for the rule of a delegated call
}

// outcome decides for a caller holding roles (via: the identity entry behind each role)
// calling fullMethod, which the roles in granting grant.
func (p *Policy) outcome(roles []string, via map[string]string, granting []*role, fullMethod string) outcome {
	o := outcome{roles: slices.Clip(roles), ownOnly: true}
	held := map[string]bool{ImplicitRole: true}
	for _, r := range roles {
		held[r] = true
	}
	var grants, delegating []string
	for _, r := range granting {
		if !held[r.name] {
			continue
		}
		grant := fmt.Sprintf("%s -> role %q", via[r.name], r.name)
		grants = append(grants, grant)
		o.ownOnly = o.ownOnly && !r.scopeAny
		if r.delegate {
			delegating = append(delegating, grant+" (delegate)")
		}
	}
	if len(grants) == 0 {
		o.rule = fmt.Sprintf("no role of [%s] grants %s", strings.Join(roles, " "), fullMethod)
		o.ownOnly = false
		return o
	}
	o.allowed = true
	o.rule = strings.Join(grants, ", ")
	if len(delegating) > 0 {
		o.delegable = true
		o.delegateRule = strings.Join(delegating, ", ")
	}
	return o
}

// subjectOutcome is what Decide concludes from a delegated end user's roles and the
// method; like outcome, shared and read only. It does not depend on the end user's ID.
type subjectOutcome struct {
	roles   []string // the end user's roles, sorted, without ImplicitRole
	rule    string   // the on_behalf grants, or why none applies
	allowed bool
	ownOnly bool // every on_behalf rule granting the method has scope own
}

// subjectOutcome decides for an end user matched by entries (SPIFFE ID criteria only) on
// whose behalf a delegate calls fullMethod, which the on_behalf rules of granting grant.
func (p *Policy) subjectOutcome(entries []*matcher, granting []*role, fullMethod string) subjectOutcome {
	roles, via := p.rolesOfEntries(entries)
	so := subjectOutcome{roles: slices.Clip(roles), ownOnly: true}
	if len(roles) == 0 {
		// ImplicitRole alone: the policy does not know the end user, whom compile never
		// lets ImplicitRole's rules cover.
		so.rule = "the end user matches no identity entry of the policy (no role)"
		so.ownOnly = false
		return so
	}
	held := make(map[string]bool, len(roles))
	for _, r := range roles {
		held[r] = true
	}
	var grants []string
	for _, r := range granting {
		if !held[r.name] {
			continue
		}
		scope := ScopeOwn
		if r.onBehalfAny {
			scope = ScopeAny
		}
		grants = append(grants, fmt.Sprintf("%s -> role %q on_behalf (scope %s)", via[r.name], r.name, scope))
		so.ownOnly = so.ownOnly && !r.onBehalfAny
	}
	if len(grants) == 0 {
		so.rule = fmt.Sprintf("no role of the end user [%s] grants %s on_behalf", strings.Join(roles, " "), fullMethod)
		so.ownOnly = false
		return so
	}
	so.allowed = true
	so.rule = strings.Join(grants, ", ")
	return so
}

// delegate validates the on-behalf-of values sent by a caller whose outcome is o for
// fullMethod, returning the end user or the reason for refusing.
func (p *Policy) delegate(o outcome, fullMethod string, values []string) (*Subject, string) {
	if !o.delegable {
		return nil, fmt.Sprintf("%s metadata from roles [%s], none of which may delegate %s", OnBehalfOfKey, strings.Join(o.roles, " "), fullMethod)
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
	so, ok := p.precomputedSubject(sid, fullMethod)
	if !ok {
		so = p.subjectOutcome(p.subjectEntries(sid), p.onBehalfGranting(fullMethod), fullMethod)
	}
	if !so.allowed {
		return nil, fmt.Sprintf("%s, on behalf of %s: %s", o.delegateRule, sid, so.rule)
	}
	return &Subject{ID: sid, Roles: so.roles, OwnOnly: so.ownOnly, Rule: so.rule}, ""
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
