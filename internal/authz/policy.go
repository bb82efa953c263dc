package authz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
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

// ErrUndelegableMethods means a role may delegate a registered method (delegate: true) but
// no role grants it on_behalf, so every delegated call of it would be refused: usually a
// policy written before on_behalf rules existed.
var ErrUndelegableMethods = errors.New("methods a role may delegate but no role grants on_behalf")

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
	// onBehalf maps a method pattern, like grants, to the roles that let a delegate call it
	// on behalf of an end user holding them (their on_behalf rules).
	onBehalf map[string][]*role
	// fast holds Decide's precomputed outcomes (fastpath.go); nil for a very large policy.
	fast *fastPath
}

type role struct {
	name     string
	scopeAny bool
	delegate bool
	patterns []string
	// onBehalfAny is the scope of the role's on_behalf rule; onBehalfPatterns its methods.
	onBehalfAny      bool
	onBehalfPatterns []string
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
	Description string       `yaml:"description"`
	Scope       string       `yaml:"scope"`
	Delegate    bool         `yaml:"delegate"`
	Methods     []string     `yaml:"methods"`
	OnBehalf    *rawOnBehalf `yaml:"on_behalf"`
}

// rawOnBehalf is what a delegate may do for an end user holding the role.
type rawOnBehalf struct {
	Scope   string   `yaml:"scope"`
	Methods []string `yaml:"methods"`
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
		return nil, YAMLError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &LineError{File: name, Line: extra.Line, Reason: "more than one YAML document"}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, YAMLError(name, err)
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

// YAMLError rewrites yaml.v3 errors ("yaml: line 3: ...", or a TypeError listing
// "line 3: ...") into LineErrors of file name: one way for every YAML file the bank
// reads (policies, and bankctl's policy test cases) to say where it is wrong.
func YAMLError(name string, err error) error {
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
// no role grants, and ErrUndelegableMethods naming every method of services that a role may
// delegate but no role grants on_behalf. A service runs it before serving (and on every
// policy reload) and refuses to start if it fails, so a new RPC can never ship unprotected
// and a delegate never finds out at run time that its every call will be refused.
func (p *Policy) Check(services map[string]grpc.ServiceInfo) error {
	var missing, undelegable []string
	for _, full := range fullMethods(services) {
		granting := p.granting(full)
		if len(granting) == 0 {
			missing = append(missing, full)
			continue
		}
		if slices.ContainsFunc(granting, func(r *role) bool { return r.delegate }) && len(p.onBehalfGranting(full)) == 0 {
			undelegable = append(undelegable, full)
		}
	}
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("policy %s: %w: %s", p.name, ErrUncoveredMethods, strings.Join(missing, ", ")))
	}
	if len(undelegable) > 0 {
		errs = append(errs, fmt.Errorf("policy %s: %w: %s (give the end users' roles an on_behalf rule, or drop delegate: true)",
			p.name, ErrUndelegableMethods, strings.Join(undelegable, ", ")))
	}
	return errors.Join(errs...)
}

// Unused returns the policy's method patterns (methods and on_behalf rules) that match no
// method of services: usually a typo, worth a warning at start-up.
func (p *Policy) Unused(services map[string]grpc.ServiceInfo) []string {
	used := make(map[string]bool)
	for _, full := range fullMethods(services) {
		used[full] = true
		used[serviceWildcard(full)] = true
	}
	seen := make(map[string]bool)
	var unused []string
	for _, grants := range []map[string][]*role{p.grants, p.onBehalf} {
		for pattern := range grants {
			if !used[pattern] && !seen[pattern] {
				seen[pattern] = true
				unused = append(unused, pattern)
			}
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
	return lookup(p.grants, fullMethod)
}

// onBehalfGranting returns the roles whose on_behalf rule grants fullMethod, exact rules
// first.
func (p *Policy) onBehalfGranting(fullMethod string) []*role {
	return lookup(p.onBehalf, fullMethod)
}

func lookup(grants map[string][]*role, fullMethod string) []*role {
	exact := grants[fullMethod]
	wild := grants[serviceWildcard(fullMethod)]
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
