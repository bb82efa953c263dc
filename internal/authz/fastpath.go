package authz

import (
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
)

// Decide runs on every RPC. Its answer depends only on which identity entries match the
// caller and on the method, and the audit rule it writes is a string built from both, so
// building it per call (maps, fmt, sorting) cost about a microsecond and ten allocations.
// A compiled policy therefore precomputes, for each method it names and for "no entry
// matches" and each single entry, the whole outcome; a call then costs the matcher loop
// and two map lookups, with no allocation. Callers matched by several entries, methods the
// policy does not name and denials of methods granted only through a service wildcard
// (whose rule names the method) take the general path, so answers never differ.

// maxPrecomputed bounds the outcomes precomputed per policy ((entries + 1) x method
// patterns); a larger policy is decided entirely on the general path.
const maxPrecomputed = 1 << 16

// fastPath holds the precomputed outcomes. Index 0 of a slice is for a caller no identity
// entry matches, index i+1 for a caller matched by identities[i] alone.
type fastPath struct {
	// exact maps a full method name the policy grants by name to its outcomes, wildcard
	// grants of its service included.
	exact map[string][]outcome
	// service maps "/pkg.Service/" of a "/pkg.Service/*" pattern to the outcomes of any
	// other method of that service; only allowed outcomes are used from it.
	service map[string][]outcome
	// subjects are the roles of a delegated end user, by the same indexes, for entries
	// made only of SPIFFE ID criteria (nil for the others, which never match a subject).
	subjects []*Subject
}

// precompute fills p.fast; p must be fully compiled and valid.
func (p *Policy) precompute() {
	entries := len(p.identities) + 1
	if entries*len(p.grants) > maxPrecomputed {
		return
	}
	f := &fastPath{
		exact:    make(map[string][]outcome),
		service:  make(map[string][]outcome),
		subjects: make([]*Subject, entries),
	}
	sets := make([][]*matcher, entries) // sets[0] is no entry at all
	for i, m := range p.identities {
		sets[i+1] = []*matcher{m}
	}
	for i, set := range sets {
		if i == 0 || set[0].subjectOnly() {
			f.subjects[i] = p.subject(set)
		}
	}
	for pattern := range p.grants {
		outs := make([]outcome, entries)
		svc, wildcard := strings.CutSuffix(pattern, "*")
		for i, set := range sets {
			roles, via := p.rolesOfEntries(set)
			if wildcard {
				outs[i] = p.outcome(roles, via, p.grants[pattern], pattern)
			} else {
				outs[i] = p.outcome(roles, via, p.granting(pattern), pattern)
			}
		}
		if wildcard {
			f.service[svc] = outs
		} else {
			f.exact[pattern] = outs
		}
	}
	p.fast = f
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
	if outs, ok := p.fast.exact[fullMethod]; ok {
		return outs[idx], true
	}
	if i := strings.LastIndexByte(fullMethod, '/'); i > 0 {
		if outs, ok := p.fast.service[fullMethod[:i+1]]; ok && outs[idx].allowed {
			return outs[idx], true
		}
	}
	return outcome{}, false
}

// precomputedSubject returns the roles (not the ID) of the delegated end user sid if they
// were precomputed; the result is shared: copy it before setting the ID.
func (p *Policy) precomputedSubject(sid spiffeid.ID) *Subject {
	if p.fast == nil {
		return nil
	}
	idx := 0
	for i, m := range p.identities {
		if m.matchSubject(sid) {
			if idx != 0 {
				return nil
			}
			idx = i + 1
		}
	}
	return p.fast.subjects[idx]
}
