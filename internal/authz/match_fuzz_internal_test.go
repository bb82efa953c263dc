package authz

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
)

// underReference is the obvious definition of "p is under prefix", written for reading,
// not for speed: split both paths into segments; p must start with all of prefix's and
// have at least one more, and none of its further segments may be empty, "." or "..".
func underReference(p, prefix string) bool {
	if !strings.HasPrefix(p, "/") || !strings.HasPrefix(prefix, "/") {
		return false
	}
	ps, qs := strings.Split(p[1:], "/"), strings.Split(prefix[1:], "/")
	if len(ps) <= len(qs) {
		return false
	}
	for i, q := range qs {
		if ps[i] != q {
			return false
		}
	}
	for _, s := range ps[len(qs):] {
		if s == "" || s == "." || s == ".." {
			return false
		}
	}
	return true
}

// FuzzHasPathPrefix compares the prefix matcher with underReference on any path, valid or
// not, for every prefix a policy can hold (a valid SPIFFE ID path, not empty). The seeds
// are the edge cases, and run in plain go test.
func FuzzHasPathPrefix(f *testing.F) {
	for _, s := range [][2]string{
		{"/teller/tina", "/teller"},
		{"/teller", "/teller"},
		{"/teller/", "/teller"},
		{"/teller//x", "/teller"},
		{"/teller/x/", "/teller"},
		{"/teller/x//y", "/teller"},
		{"/teller/./x", "/teller"},
		{"/teller/..", "/teller"},
		{"/teller/...", "/teller"},
		{"/tellerx/tina", "/teller"},
		{"/telle/tina", "/teller"},
		{"/teller/branch/tom", "/teller"},
		{"/teller/branch/tom", "/teller/branch"},
		{"/teller/branchx/tom", "/teller/branch"},
		{"teller/tina", "/teller"},
		{"", "/teller"},
		{"/", "/a"},
		{"/a/b", "/a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, prefix string) {
		if prefix == "" || spiffeid.ValidatePath(prefix) != nil {
			return // compile never builds such a prefix
		}
		if got, want := hasPathPrefix(p, prefix), underReference(p, prefix); got != want {
			t.Fatalf("hasPathPrefix(%q, %q) = %v, reference says %v", p, prefix, got, want)
		}
	})
}

// FuzzSPIFFEIDMatchers compiles a policy whose entries use prefix, exact and glob matchers
// built from the fuzzed text, decides for a fuzzed SPIFFE ID, and compares the roles with
// what the documented semantics say on the strings themselves: exact is string equality of
// valid IDs, prefix (written with its trailing slash) is "the ID starts with it" (a valid ID
// never has an empty segment, so whatever follows the slash is a name), and glob is
// path.Match over the whole ID, whose '*' never crosses a '/'.
func FuzzSPIFFEIDMatchers(f *testing.F) {
	for _, s := range [][2]string{
		{"teller", "spiffe://bank.local/teller/tina"},
		{"teller", "spiffe://bank.local/teller"},
		{"teller", "spiffe://bank.local/tellerx"},
		{"teller/branch", "spiffe://bank.local/teller/branch/tom"},
		{"teller", "spiffe://bank.local/teller/branch/tom"},
		{"customer", "spiffe://other.example/customer/alice"},
		{"a", "spiffe://bank.local/a/b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, segment, id string) {
		base, err := spiffeid.FromSegments(spiffeid.RequireTrustDomainFromString("bank.local"), strings.Split(segment, "/")...)
		if err != nil || strings.ContainsAny(segment, "*?[]\\\"") {
			return // not a path a policy can name (or a glob pattern of its own)
		}
		sid, err := spiffeid.FromString(id)
		if err != nil {
			return // a peer's or end user's ID is always parsed first
		}
		prefix, exact, glob := base.String()+"/", base.String(), base.String()+"/*"
		policy := fmt.Sprintf(`trust_domain: bank.local
identities:
  - { name: p, match: { spiffe_id_prefix: %q }, roles: [p] }
  - { name: e, match: { spiffe_id: %q }, roles: [e] }
  - { name: g, match: { spiffe_id_glob: %q }, roles: [g] }
roles:
  p: { methods: [/a.B/C] }
  e: { methods: [/a.B/C] }
  g: { methods: [/a.B/C] }
  authenticated: { methods: [/a.B/W] }
`, prefix, exact, glob)
		p, err := ParsePolicy("fuzz.yaml", []byte(policy))
		if err != nil {
			t.Fatalf("policy for %q: %v", segment, err)
		}
		var want []string
		s := sid.String()
		if rest, ok := strings.CutPrefix(s, glob[:len(glob)-1]); ok && rest != "" && !strings.Contains(rest, "/") {
			want = append(want, "g")
		}
		if strings.HasPrefix(s, prefix) {
			want = append(want, "p")
		}
		if s == exact {
			want = append([]string{"e"}, want...)
		}
		d := p.Decide(identity.Identity{ID: sid}, "/a.B/W")
		slices.Sort(want)
		if got := strings.Join(d.Roles, ","); got != strings.Join(want, ",") {
			t.Fatalf("%s with prefix %s, exact %s, glob %s: roles %q, want %q", s, prefix, exact, glob, got, want)
		}
	})
}
