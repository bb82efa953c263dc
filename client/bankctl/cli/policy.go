package cli

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
)

// The services' embedded default policies, byte for byte (TestEmbeddedPoliciesMatchServices
// fails when services/*/policy.yaml changes without them: go generate ./client/bankctl/cli).
//
//go:generate cp ../../../services/accounts/policy.yaml policies/accounts.yaml
//go:generate cp ../../../services/payments/policy.yaml policies/payments.yaml
var (
	//go:embed policies/accounts.yaml
	accountsPolicy []byte
	//go:embed policies/payments.yaml
	paymentsPolicy []byte
)

// embeddedPolicies maps the names --policy accepts for the services' defaults.
var embeddedPolicies = map[string][]byte{serviceAccounts: accountsPolicy, servicePayments: paymentsPolicy}

const (
	decisionAllow = "allow"
	decisionDeny  = "deny"
)

func (a *app) policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check authorization policies offline: explain one decision, or test a table of them",
		Long: `The policy commands evaluate a service's authorization policy on this machine, with the
code the services run (internal/authz): nothing is dialed and no certificate is needed.

--policy (or the FILE argument) is a policy file, or "accounts" / "payments" for the
default policy embedded in that service's binary.`,
	}
	cmd.AddCommand(a.policyCheckCommand(), a.policyTestCommand())
	return cmd
}

// ownership is what the user says about the resource of the call.
type ownership int

const (
	ownedUnknown ownership = iota
	owned
	notOwned
)

func (a *app) policyCheckCommand() *cobra.Command {
	var policyName, spiffeID, method string
	var isOwned, isNotOwned bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Explain whether a policy lets an identity call a method",
		Long: `check decides, as the service would, whether the identity --spiffe-id may call --method,
and explains it: the identity entries the ID matches, its roles, the rules that name the
method (held or not), the rule that allowed the call or why it was denied, and its scope.
With --on-behalf-of it checks a delegated call: the caller's role must be allowed to
delegate the method and the end user's role must grant it under on_behalf.

Scope own means the service also checks that the resource the call touches (the account
or payment; for OpenAccount and ListAccounts the owner named) belongs to the principal
(the end user of a delegated call). Say --owned or --not-owned to include that check.

It prints "allow" or "deny" first and exits 0 on allow, 4 on deny, 2 on a bad policy file
or method name. The identity is known only by its SPIFFE ID: entries that also match
subject_cn, subject_ou, dns_san or fingerprint_sha256 are listed as not evaluated.`,
		Example: `  bankctl policy check --policy accounts --spiffe-id spiffe://bank.local/customer/alice --method /bank.accounts.v1.AccountsService/GetAccount --not-owned
  bankctl policy check --policy accounts --spiffe-id spiffe://bank.local/service/payments \
      --method /bank.accounts.v1.AccountsService/Transfer --on-behalf-of spiffe://bank.local/customer/alice
  bankctl policy check --policy my-policy.yaml --spiffe-id spiffe://bank.local/teller/tina --method /bank.payments.v1.PaymentsService/CreatePayment`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if isOwned && isNotOwned {
				return usageFailure(errors.New("--owned and --not-owned are alternatives: give at most one"))
			}
			own := ownedUnknown
			switch {
			case isOwned:
				own = owned
			case isNotOwned:
				own = notOwned
			}
			p, err := loadPolicy(policyName)
			if err != nil {
				return err
			}
			var onBehalfOf []string
			if a.g.onBehalfOf != "" {
				onBehalfOf = []string{a.g.onBehalfOf}
			}
			v, err := evaluate(p, spiffeID, method, onBehalfOf, own)
			if err != nil {
				return usageFailure(err)
			}
			if !knownMethods()[method] {
				a.note("note: %s is not a method of the accounts or payments service; check its spelling", method)
			}
			if err := a.printVerdict(policyName, p, v); err != nil {
				return err
			}
			if !v.allowed {
				return &failure{diag: diagnosis{kind: KindPermissionDenied, line: fmt.Sprintf("deny: the policy refuses %s to %s", method, spiffeID)}}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&policyName, "policy", "", `policy file, or "accounts" / "payments" for a service's embedded default (a file of that name: ./accounts) (required)`)
	f.StringVar(&spiffeID, "spiffe-id", "", "SPIFFE ID of the caller (required)")
	f.StringVar(&method, "method", "", "full gRPC method name, such as /bank.accounts.v1.AccountsService/GetAccount (required)")
	f.BoolVar(&isOwned, "owned", false, "the resource the call touches belongs to the principal (matters for scope own)")
	f.BoolVar(&isNotOwned, "not-owned", false, "the resource the call touches belongs to someone else (matters for scope own)")
	for _, name := range []string{"policy", "spiffe-id", "method"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (a *app) policyTestCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "test POLICY CASES.yaml",
		Short: "Run a table of expected decisions against a policy",
		Long: `test evaluates every case of CASES.yaml against POLICY (a file, or "accounts" /
"payments" for an embedded default) as 'policy check' would, prints each case whose
decision differs from the expected one, and exits 1 if any does (2 on a bad file).

CASES.yaml is a list of cases:

  - name: customer reads an account of someone else
    spiffe_id: spiffe://bank.local/customer/alice
    method: /bank.accounts.v1.AccountsService/GetAccount
    owned: false                 # optional: does the resource belong to the principal?
    expect: deny                 # allow or deny
  - name: payments moves a customer's money
    spiffe_id: spiffe://bank.local/service/payments
    method: /bank.accounts.v1.AccountsService/Transfer
    on_behalf_of: spiffe://bank.local/customer/alice   # optional: a delegated call
    owned: true
    expect: allow
    scope: own                   # optional: the scope an allowed call must get`,
		Example: `  bankctl policy test accounts services/accounts/policy_test_cases.yaml
  bankctl policy test my-policy.yaml my-cases.yaml`,
		Args: cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := loadPolicy(args[0])
			if err != nil {
				return err
			}
			cases, err := loadCases(args[1])
			if err != nil {
				return usageFailure(err)
			}
			failed := 0
			for _, c := range cases {
				if msg := c.run(p); msg != "" {
					failed++
					fmt.Fprintf(a.stdout, "FAIL %s:%d: %s: %s\n", args[1], c.line, c.Name, msg)
				}
			}
			fmt.Fprintf(a.stdout, "%d cases, %d passed, %d failed (policy %s)\n", len(cases), len(cases)-failed, failed, args[0])
			if failed > 0 {
				return &failure{diag: diagnosis{kind: KindRequest, line: fmt.Sprintf("%d of %d policy cases failed", failed, len(cases))}}
			}
			return nil
		},
	}
}

// loadPolicy reads --policy: a service's embedded default by name, or a file. A policy
// that does not parse is a usage error naming file:line.
func loadPolicy(name string) (*authz.Policy, error) {
	if data, ok := embeddedPolicies[name]; ok {
		p, err := authz.ParsePolicy("embedded "+name+" policy", data)
		if err != nil {
			return nil, localFailure(err) // a broken embedded default is our bug
		}
		return p, nil
	}
	p, err := authz.LoadPolicy(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usageFailure(fmt.Errorf("policy %q: no such file (in %s), nor an embedded default (accounts, payments)", name, absDir(name)))
	}
	if err != nil {
		return nil, usageFailure(fmt.Errorf("bad policy: %s", strings.ReplaceAll(err.Error(), "\n", "\n  ")))
	}
	return p, nil
}

// absDir names the directory a relative path was looked for in.
func absDir(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Dir(path)
	}
	return filepath.Dir(abs)
}

// verdict is a decision of the policy plus the ownership check scope own implies.
type verdict struct {
	explanation authz.Explanation
	allowed     bool
	// scope is the scope of an allowed call: ScopeAny or ScopeOwn.
	scope string
	// principal is whose resources scope own limits the call to.
	principal string
	// reason says why a call was denied, or what an allowed one is still subject to.
	reason string
}

// evaluate decides with authz.Policy.Explain, then applies the ownership the user stated.
func evaluate(p *authz.Policy, spiffeID, method string, onBehalfOf []string, own ownership) (verdict, error) {
	id, err := spiffeid.FromString(spiffeID)
	if err != nil {
		return verdict{}, fmt.Errorf("--spiffe-id %q: %w", spiffeID, err)
	}
	e, err := p.Explain(identity.Identity{ID: id}, method, onBehalfOf...)
	if err != nil {
		return verdict{}, fmt.Errorf("--method: %w", err)
	}
	d := e.Decision
	v := verdict{explanation: e, allowed: d.Allowed, reason: d.Rule}
	if !d.Allowed {
		return v, nil
	}
	principal, ownOnly := d.Principal()
	v.principal = principal.String()
	v.scope = authz.ScopeAny
	if !ownOnly {
		return v, nil
	}
	v.scope = authz.ScopeOwn
	switch own {
	case notOwned:
		v.allowed = false
		v.reason = fmt.Sprintf("%s, but with scope own the service refuses a resource %s does not own", d.Rule, principal)
	case owned:
		v.reason = fmt.Sprintf("%s; scope own, and the resource belongs to %s", d.Rule, principal)
	default:
		v.reason = fmt.Sprintf("%s; scope own: only on resources %s owns (the service checks; say --owned or --not-owned)", d.Rule, principal)
	}
	return v, nil
}

// verdictJSON is what `policy check --output json` prints.
type verdictJSON struct {
	Decision    string        `json:"decision"`
	Reason      string        `json:"reason"`
	Policy      string        `json:"policy"`
	Method      string        `json:"method"`
	SPIFFEID    string        `json:"spiffe_id"`
	Roles       []string      `json:"roles"`
	Entries     []entryJSON   `json:"entries"`
	Unevaluated []entryJSON   `json:"entries_not_evaluated,omitempty"`
	Rules       []grantJSON   `json:"rules"`
	Scope       string        `json:"scope,omitempty"`
	Principal   string        `json:"principal,omitempty"`
	OnBehalfOf  *onBehalfJSON `json:"on_behalf_of,omitempty"`
	AuditRule   string        `json:"audit_rule"`
}

type entryJSON struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
}

type grantJSON struct {
	Role     string `json:"role"`
	Pattern  string `json:"pattern"`
	Scope    string `json:"scope"`
	Delegate bool   `json:"delegate,omitempty"`
	Held     bool   `json:"held"`
}

type onBehalfJSON struct {
	SPIFFEID string      `json:"spiffe_id"`
	Valid    bool        `json:"valid"`
	Roles    []string    `json:"roles"`
	Entries  []entryJSON `json:"entries"`
	Rules    []grantJSON `json:"on_behalf_rules"`
}

func entriesJSON(es []authz.EntryMatch) []entryJSON {
	out := []entryJSON{}
	for _, e := range es {
		out = append(out, entryJSON{Name: e.Name, Roles: e.Roles})
	}
	return out
}

func grantsJSON(gs []authz.Grant) []grantJSON {
	out := []grantJSON{}
	for _, g := range gs {
		out = append(out, grantJSON(g))
	}
	return out
}

func (a *app) printVerdict(policyName string, p *authz.Policy, v verdict) error {
	e := v.explanation
	d := e.Decision
	word := decisionDeny
	if v.allowed {
		word = decisionAllow
	}
	if a.json() {
		out := verdictJSON{
			Decision: word, Reason: v.reason, Policy: policyName, Method: e.Method,
			SPIFFEID: d.Identity.ID.String(), Roles: append([]string{}, d.Roles...),
			Entries: entriesJSON(e.Entries), Rules: grantsJSON(e.Grants),
			Scope: v.scope, Principal: v.principal, AuditRule: d.Rule,
		}
		if len(e.Unsatisfied) > 0 {
			out.Unevaluated = entriesJSON(e.Unsatisfied)
		}
		if s := e.OnBehalf; s != nil {
			out.OnBehalfOf = &onBehalfJSON{SPIFFEID: strings.Join(s.Values, ","), Valid: !s.ID.IsZero(),
				Roles: append([]string{}, s.Roles...), Entries: entriesJSON(s.Entries), Rules: grantsJSON(s.Grants)}
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return localFailure(fmt.Errorf("write output: %w", err))
		}
		return nil
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n", word)
	tw := newTable(&b)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("policy:", fmt.Sprintf("%s (trust domain %s)", policyName, p.TrustDomain()))
	row("caller:", d.Identity.ID.String())
	row("method:", e.Method)
	if d.Identity.ID.MemberOf(p.TrustDomain()) {
		row("entries:", entriesText(e.Entries, "none (the caller holds only role "+authz.ImplicitRole+")"))
		if len(e.Unsatisfied) > 0 {
			row("not evaluated:", entriesText(e.Unsatisfied, "")+" (these also need subject, DNS SAN or fingerprint criteria, which a SPIFFE ID alone cannot meet)")
		}
		row("roles:", rolesText(d.Roles))
	} else {
		row("roles:", "none: the caller is outside trust domain "+p.TrustDomain().Name()+", which the service refuses before any rule")
	}
	row("rules:", grantsText(e.Grants, "held", "no role grants "+e.Method))
	if s := e.OnBehalf; s != nil {
		row("on behalf of:", strings.Join(s.Values, ", "))
		if !s.ID.IsZero() {
			row("  its entries:", entriesText(s.Entries, "none (no role: nothing may be done on its behalf)"))
			row("  its roles:", rolesText(s.Roles))
		}
		row("  on_behalf rules:", grantsText(s.Grants, "held by the end user", "no role grants "+e.Method+" on_behalf"))
	}
	if v.allowed {
		row("allowed by:", d.Rule)
		row("scope:", scopeText(v))
	} else {
		row("denied:", v.reason)
	}
	if err := tw.Flush(); err != nil {
		return localFailure(err)
	}
	if _, err := io.Copy(a.stdout, &b); err != nil {
		return localFailure(fmt.Errorf("write output: %w", err))
	}
	return nil
}

func entriesText(es []authz.EntryMatch, none string) string {
	if len(es) == 0 {
		return none
	}
	parts := make([]string, 0, len(es))
	for _, e := range es {
		parts = append(parts, fmt.Sprintf("%q -> [%s]", e.Name, strings.Join(e.Roles, " ")))
	}
	return strings.Join(parts, ", ")
}

func rolesText(roles []string) string {
	if len(roles) == 0 {
		return authz.ImplicitRole + " (every identity of the trust domain holds it)"
	}
	return strings.Join(roles, " ") + " (and " + authz.ImplicitRole + ")"
}

func grantsText(gs []authz.Grant, heldWord, none string) string {
	if len(gs) == 0 {
		return none
	}
	parts := make([]string, 0, len(gs))
	for _, g := range gs {
		s := fmt.Sprintf("role %q via %s, scope %s", g.Role, g.Pattern, g.Scope)
		if g.Delegate {
			s += ", may delegate"
		}
		if g.Held {
			s += " (" + heldWord + ")"
		} else {
			s += " (not held)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "\n\t")
}

func scopeText(v verdict) string {
	switch {
	case v.scope == authz.ScopeAny:
		return "any: any resource"
	case strings.Contains(v.reason, "resource belongs to"):
		return "own: the resource belongs to " + v.principal
	}
	return "own: only resources " + v.principal + " owns (the service checks ownership; --owned / --not-owned to include it)"
}

// knownMethods returns the full names of the methods the services serve.
func knownMethods() map[string]bool {
	out := make(map[string]bool)
	for _, sd := range []*grpc.ServiceDesc{
		&accountsv1.AccountsService_ServiceDesc, &paymentsv1.PaymentsService_ServiceDesc,
		&identityv1.IdentityService_ServiceDesc, &healthpb.Health_ServiceDesc,
		&reflectionv1.ServerReflection_ServiceDesc, &reflectionv1alpha.ServerReflection_ServiceDesc,
	} {
		for _, m := range sd.Methods {
			out["/"+sd.ServiceName+"/"+m.MethodName] = true
		}
		for _, s := range sd.Streams {
			out["/"+sd.ServiceName+"/"+s.StreamName] = true
		}
	}
	return out
}

// policyCase is one expected decision of a CASES.yaml file.
type policyCase struct {
	Name       string `yaml:"name"`
	SPIFFEID   string `yaml:"spiffe_id"`
	Method     string `yaml:"method"`
	OnBehalfOf string `yaml:"on_behalf_of"`
	Owned      *bool  `yaml:"owned"`
	Expect     string `yaml:"expect"`
	Scope      string `yaml:"scope"`
	line       int
}

// loadCases reads and validates a CASES.yaml file; every problem names file:line.
func loadCases(path string) ([]policyCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cases %q: no such file (looked in %s)", path, absDir(path))
		}
		return nil, fmt.Errorf("cases: %w", err)
	}
	var cases []policyCase
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cases); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no cases", path)
		}
		return nil, authz.YAMLError(path, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil && len(root.Content) == 1 && root.Content[0].Kind == yaml.SequenceNode {
		for i, n := range root.Content[0].Content {
			if i < len(cases) {
				cases[i].line = n.Line
			}
		}
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	var errs []error
	seen := make(map[string]bool)
	for _, c := range cases {
		at := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s", path, c.line, fmt.Sprintf(format, args...)))
		}
		switch {
		case c.Name == "":
			at("name is required")
		case seen[c.Name]:
			at("case %q listed twice", c.Name)
		}
		seen[c.Name] = true
		if c.SPIFFEID == "" || c.Method == "" {
			at("spiffe_id and method are required")
		}
		if c.Expect != decisionAllow && c.Expect != decisionDeny {
			at("expect %q: want allow or deny", c.Expect)
		}
		switch c.Scope {
		case "", authz.ScopeAny, authz.ScopeOwn:
		default:
			at("scope %q: want any or own", c.Scope)
		}
		if c.Scope != "" && c.Expect != decisionAllow {
			at("scope is the scope of an allowed call: only with expect: allow")
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cases, nil
}

// run evaluates the case and returns what differs from the expectation, or "".
func (c policyCase) run(p *authz.Policy) string {
	own := ownedUnknown
	if c.Owned != nil {
		own = notOwned
		if *c.Owned {
			own = owned
		}
	}
	var onBehalfOf []string
	if c.OnBehalfOf != "" {
		onBehalfOf = []string{c.OnBehalfOf}
	}
	v, err := evaluate(p, c.SPIFFEID, c.Method, onBehalfOf, own)
	if err != nil {
		return err.Error()
	}
	got := decisionDeny
	if v.allowed {
		got = decisionAllow
	}
	if got != c.Expect {
		return fmt.Sprintf("got %s, want %s: %s", got, c.Expect, v.reason)
	}
	if c.Scope != "" && v.scope != c.Scope {
		return fmt.Sprintf("allowed with scope %s, want scope %s: %s", v.scope, c.Scope, v.reason)
	}
	return ""
}
