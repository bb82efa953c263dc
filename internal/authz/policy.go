package authz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
)

// ImplicitRole is the role every identity of the policy's trust domain holds.
const ImplicitRole = "authenticated"

// Role scopes.
const (
	// ScopeAny lets a role act on any resource.
	ScopeAny = "any"
	// ScopeOwn limits a role to resources its principal owns (the default).
	ScopeOwn = "own"
)

// ErrUncoveredMethods means a registered method is granted by no role of the policy.
var ErrUncoveredMethods = errors.New("methods without a policy rule")

// LineError is one problem in a policy file, located by file and line.
type LineError struct {
	File   string
	Line   int
	Reason string
}

// Error formats the problem as file:line: reason.
func (e *LineError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

// Policy is a parsed, validated and immutable authorization policy.
type Policy struct {
	name       string
	td         spiffeid.TrustDomain
	identities []*matcher
	roles      map[string]*role
	// grants maps an exact full method name, or "/pkg.Service/*", to the roles granting it.
	grants map[string][]*role
	// fast holds Decide's precomputed outcomes (fastpath.go); nil for a very large policy.
	fast *fastPath
}

type role struct {
	name     string
	scopeAny bool
	delegate bool
	patterns []string
}

// The YAML shape of a policy file; decoded with unknown fields rejected.
type rawPolicy struct {
	TrustDomain string             `yaml:"trust_domain"`
	Identities  []rawIdentity      `yaml:"identities"`
	Roles       map[string]rawRole `yaml:"roles"`
}

type rawIdentity struct {
	Name  string   `yaml:"name"`
	Match rawMatch `yaml:"match"`
	Roles []string `yaml:"roles"`
}

type rawMatch struct {
	SPIFFEID          string `yaml:"spiffe_id"`
	SPIFFEIDPrefix    string `yaml:"spiffe_id_prefix"`
	SPIFFEIDGlob      string `yaml:"spiffe_id_glob"`
	SubjectCN         string `yaml:"subject_cn"`
	SubjectOU         string `yaml:"subject_ou"`
	DNSSAN            string `yaml:"dns_san"`
	FingerprintSHA256 string `yaml:"fingerprint_sha256"`
}

type rawRole struct {
	Description string   `yaml:"description"`
	Scope       string   `yaml:"scope"`
	Delegate    bool     `yaml:"delegate"`
	Methods     []string `yaml:"methods"`
}

// LoadPolicy reads and parses the policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	return ParsePolicy(path, data)
}

// ParsePolicy parses and validates a policy; name (usually the file path) prefixes every
// error, which reads name:line: reason. Unknown fields, unknown roles, malformed SPIFFE IDs,
// patterns or fingerprints are all errors.
func ParsePolicy(name string, data []byte) (*Policy, error) {
	var raw rawPolicy
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &LineError{File: name, Reason: "empty policy"}
		}
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &LineError{File: name, Line: extra.Line, Reason: "more than one YAML document"}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	c := compiler{name: name, loc: locator{&root}}
	p := c.compile(&raw)
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	p.precompute()
	return p, nil
}

var (
	yamlLineRE  = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlFieldRE = regexp.MustCompile(`field (\S+) not found in type \S+`)
)

// yamlError rewrites yaml.v3 errors ("yaml: line 3: ...", or a TypeError listing
// "line 3: ...") into LineErrors.
func yamlError(name string, err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	errs := make([]error, 0, len(msgs))
	for _, m := range msgs {
		m = yamlFieldRE.ReplaceAllString(strings.TrimSpace(m), "unknown field $1")
		le := &LineError{File: name, Reason: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			le.Line, _ = strconv.Atoi(sm[1])
			le.Reason = sm[2]
		}
		errs = append(errs, le)
	}
	return errors.Join(errs...)
}

// TrustDomain returns the trust domain the policy authorizes.
func (p *Policy) TrustDomain() spiffeid.TrustDomain { return p.td }

// Name returns the name the policy was parsed under (its file).
func (p *Policy) Name() string { return p.name }

// Check returns an error wrapping ErrUncoveredMethods naming every method of services that
// no role grants. A service runs it before serving and refuses to start if it fails, so a
// new RPC can never ship unprotected.
func (p *Policy) Check(services map[string]grpc.ServiceInfo) error {
	var missing []string
	for _, full := range fullMethods(services) {
		if len(p.granting(full)) == 0 {
			missing = append(missing, full)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("policy %s: %w: %s", p.name, ErrUncoveredMethods, strings.Join(missing, ", "))
	}
	return nil
}

// Unused returns the policy's method patterns that match no method of services: usually
// a typo, worth a warning at start-up.
func (p *Policy) Unused(services map[string]grpc.ServiceInfo) []string {
	used := make(map[string]bool)
	for _, full := range fullMethods(services) {
		used[full] = true
		used[serviceWildcard(full)] = true
	}
	var unused []string
	for pattern := range p.grants {
		if !used[pattern] {
			unused = append(unused, pattern)
		}
	}
	sort.Strings(unused)
	return unused
}

func fullMethods(services map[string]grpc.ServiceInfo) []string {
	var out []string
	for svc, info := range services {
		for _, m := range info.Methods {
			out = append(out, "/"+svc+"/"+m.Name)
		}
	}
	sort.Strings(out)
	return out
}

// granting returns the roles granting fullMethod, exact rules first.
func (p *Policy) granting(fullMethod string) []*role {
	exact := p.grants[fullMethod]
	wild := p.grants[serviceWildcard(fullMethod)]
	if len(wild) == 0 {
		return exact
	}
	return append(append([]*role(nil), exact...), wild...)
}

// serviceWildcard turns "/pkg.Service/Method" into "/pkg.Service/*".
func serviceWildcard(fullMethod string) string {
	i := strings.LastIndexByte(fullMethod, '/')
	if i <= 0 {
		return ""
	}
	return fullMethod[:i+1] + "*"
}
