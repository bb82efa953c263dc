package authz

import (
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
)

// Decide runs on every RPC. Its answer depends only on which identity entries match the
// caller (and the delegated end user) and on the method, and the audit rule it writes is a
// string built from those, so building it per call (maps, fmt, sorting) cost about a
// microsecond and ten allocations. A compiled policy therefore precomputes, for each method
// it names and for "no entry matches" and each single entry, the whole outcome of the caller
// and of an end user named on behalf; a call then costs the matcher loops and map lookups.
// Callers or end users matched by several entries, methods the policy does not name and
// denials of methods granted only through a service wildcard (whose rule names the method)
// take the general path, so answers never differ.

// maxPrecomputed bounds the outcomes precomputed per policy ((entries + 1) x method
// patterns); a larger policy is decided entirely on the general path.
const maxPrecomputed = 1 << 16

// fastPath holds the precomputed outcomes.
type fastPath struct {
	// exact maps a full method name the policy names (in methods or on_behalf) to its
	// outcomes, wildcard rules of its service included.
	exact map[string]*methodOutcomes
	// service maps "/pkg.Service/" of a "/pkg.Service/*" pattern to the outcomes of any
	// other method of that service; only allowed outcomes are used from it.
	service map[string]*methodOutcomes
}

// methodOutcomes are the outcomes of one method pattern. Index 0 of a slice is for an
// identity no entry matches, index i+1 for one matched by identities[i] alone.
type methodOutcomes struct {
	callers []outcome
	// subjects are the outcomes of a delegated end user; only the indexes of entries made
	// solely of SPIFFE ID criteria (and 0) are filled, the others never match an end user.
	subjects []subjectOutcome
}

// precompute fills p.fast; p must be fully compiled and valid.
func (p *Policy) precompute() {
	patterns := make(map[string]bool)
	for _, grants := range []map[string][]*role{p.grants, p.onBehalf} {
		for pattern := range grants {
			patterns[pattern] = true
		}
	}
	entries := len(p.identities) + 1
	if entries*len(patterns) > maxPrecomputed {
		return
	}
	f := &fastPath{exact: make(map[string]*methodOutcomes), service: make(map[string]*methodOutcomes)}
	sets := make([][]*matcher, entries) // sets[0] is no entry at all
	for i, m := range p.identities {
		sets[i+1] = []*matcher{m}
	}
	for pattern := range patterns {
		mo := &methodOutcomes{callers: make([]outcome, entries), subjects: make([]subjectOutcome, entries)}
		svc, wildcard := strings.CutSuffix(pattern, "*")
		granting, onBehalf := p.granting(pattern), p.onBehalfGranting(pattern)
		if wildcard {
			// For a method named by no exact rule, only the service's wildcard rules apply.
			granting, onBehalf = p.grants[pattern], p.onBehalf[pattern]
		}
		for i, set := range sets {
			roles, via := p.rolesOfEntries(set)
			mo.callers[i] = p.outcome(roles, via, granting, pattern)
			if i == 0 || set[0].subjectOnly() {
				mo.subjects[i] = p.subjectOutcome(set, onBehalf, pattern)
			}
		}
		if wildcard {
			f.service[svc] = mo
		} else {
			f.exact[pattern] = mo
		}
	}
	p.fast = f
}

// lookupFast returns the precomputed outcomes of fullMethod: exact ones, or else those of
// its service's wildcard (service true), whose denials name the pattern and are not to be used.
func (p *Policy) lookupFast(fullMethod string) (mo *methodOutcomes, service bool) {
	if mo, ok := p.fast.exact[fullMethod]; ok {
		return mo, false
	}
	if i := strings.LastIndexByte(fullMethod, '/'); i > 0 {
		if mo, ok := p.fast.service[fullMethod[:i+1]]; ok {
			return mo, true
		}
	}
	return nil, false
}

// precomputed returns the outcome of id calling fullMethod if it was precomputed.
func (p *Policy) precomputed(id *identity.Identity, fullMethod string) (outcome, bool) {
	if p.fast == nil {
		return outcome{}, false
	}
	idx := 0
	for i, m := range p.identities {
		if m.match(id) {
			if idx != 0 {
				return outcome{}, false // several entries: the general path merges them
			}
			idx = i + 1
		}
	}
	mo, service := p.lookupFast(fullMethod)
	if mo == nil || (service && !mo.callers[idx].allowed) {
		return outcome{}, false
	}
	return mo.callers[idx], true
}

// precomputedSubject returns the outcome of a delegate calling fullMethod on behalf of the
// end user sid if it was precomputed.
func (p *Policy) precomputedSubject(sid spiffeid.ID, fullMethod string) (subjectOutcome, bool) {
	if p.fast == nil {
		return subjectOutcome{}, false
	}
	idx := 0
	for i, m := range p.identities {
		if m.matchSubject(sid) {
			if idx != 0 {
				return subjectOutcome{}, false
			}
			idx = i + 1
		}
	}
	mo, service := p.lookupFast(fullMethod)
	if mo == nil || (service && !mo.subjects[idx].allowed) {
		return subjectOutcome{}, false
	}
	return mo.subjects[idx], true
}
