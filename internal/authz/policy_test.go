package authz_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
)

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

const (
	mOpen     = "/bank.accounts.v1.AccountsService/OpenAccount"
	mGet      = "/bank.accounts.v1.AccountsService/GetAccount"
	mTransfer = "/bank.accounts.v1.AccountsService/Transfer"
	mWatch    = "/bank.accounts.v1.AccountsService/WatchLedger"
	mWhoAmI   = "/bank.identity.v1.IdentityService/WhoAmI"
	mHealth   = "/grpc.health.v1.Health/Check"
)

// testPolicy uses every matcher kind.
const testPolicy = `# a policy exercising every matcher
trust_domain: bank.local
identities:
  - name: tellers
    match: { spiffe_id_prefix: "spiffe://bank.local/teller/" }
    roles: [teller]
  - name: customers
    match: { spiffe_id_glob: "spiffe://bank.local/customer/*" }
    roles: [customer]
  - name: audrey
    match: { spiffe_id: "spiffe://bank.local/auditor/audrey" }
    roles: [auditor]
  - name: ops by OU
    match: { spiffe_id_prefix: "spiffe://bank.local/ops/", subject_ou: "Operations" }
    roles: [auditor]
  - name: batch by CN
    match: { subject_cn: "batch-runner" }
    roles: [teller]
  - name: gateway by DNS
    match: { dns_san: "Gateway.Bank.Local" }
    roles: [auditor]
  - name: pinned
    match: { fingerprint_sha256: "%s" }
    roles: [auditor]
  - name: payments
    match: { spiffe_id: "spiffe://bank.local/service/payments" }
    roles: [payments-service]
roles:
  teller:   { scope: any, methods: [` + mOpen + `, ` + mGet + `], on_behalf: { scope: any, methods: [` + mTransfer + `] } }
  customer: { scope: own, methods: [` + mGet + `], on_behalf: { methods: [` + mTransfer + `] } }
  auditor:  { scope: any, methods: [` + mGet + `, ` + mWatch + `] }
  payments-service: { delegate: true, methods: [` + mTransfer + `] }
  authenticated:
    methods: [` + mWhoAmI + `, "/grpc.health.v1.Health/*"]
`

type fixture struct {
	pki    *pkitest.PKI
	policy *authz.Policy
	pinned *pki.Leaf
}

func newFixture(tb testing.TB) fixture {
	tb.Helper()
	p := pkitest.New(tb)
	pinned := p.Client(tb, "spiffe://bank.local/robot/pinned")
	id := mustIdentity(tb, pinned)
	policy, err := authz.ParsePolicy("test.yaml", []byte(strings.Replace(testPolicy, "%s", id.FingerprintHex(), 1)))
	if err != nil {
		tb.Fatalf("ParsePolicy: %v", err)
	}
	return fixture{pki: p, policy: policy, pinned: pinned}
}

func mustIdentity(tb testing.TB, l *pki.Leaf) identity.Identity {
	tb.Helper()
	id, err := identity.FromCertificate(l.Cert, td)
	if err != nil {
		tb.Fatalf("FromCertificate: %v", err)
	}
	return id
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each "name:line: reason" fragment must appear
	}{
		{name: "empty", yaml: "", want: []string{"p.yaml: empty policy"}},
		{name: "syntax", yaml: "trust_domain: bank.local\nroles: [\n", want: []string{"p.yaml:2: did not find expected node content"}},
		{name: "unknown top-level field", yaml: "trust_domain: bank.local\nrole: {}\n", want: []string{"p.yaml:2: unknown field role"}},
		{name: "unknown match field", yaml: `trust_domain: bank.local
identities:
  - name: x
    match: { spiffe_id_prefx: "spiffe://bank.local/x" }
    roles: [r]
roles:
  r: { methods: [/a.B/C] }
`, want: []string{"p.yaml:4: unknown field spiffe_id_prefx"}},
		{name: "wrong type", yaml: "trust_domain: bank.local\nroles:\n  r: { delegate: maybe, methods: [/a.B/C] }\n",
			want: []string{"p.yaml:3: cannot unmarshal"}},
		{name: "duplicate key", yaml: "trust_domain: bank.local\ntrust_domain: bank.local\n", want: []string{"p.yaml:2:", "already defined"}},
		{name: "no trust domain", yaml: "roles:\n  r: { methods: [/a.B/C] }\n", want: []string{"p.yaml:1: trust_domain is required"}},
		{name: "bad trust domain", yaml: "trust_domain: spiffe://bank.local/x\n", want: []string{"p.yaml:1: trust_domain"}},
		{name: "unknown role", yaml: `trust_domain: bank.local
identities:
  - name: x
    match: { spiffe_id: "spiffe://bank.local/x" }
    roles: [admin]
`, want: []string{`p.yaml:5: identity "x": unknown role "admin"`}},
		{name: "bad method", yaml: "trust_domain: bank.local\nroles:\n  r:\n    methods:\n      - /a.B/C\n      - bank.accounts.v1.AccountsService/Get\n",
			want: []string{`p.yaml:6: role "r": "bank.accounts.v1.AccountsService/Get" is not a full method name`}},
		{name: "glob method beyond service", yaml: "trust_domain: bank.local\nroles:\n  r: { methods: [\"/*\"] }\n",
			want: []string{`p.yaml:3: role "r": "/*" is not a full method name`}},
		{name: "bad scope", yaml: "trust_domain: bank.local\nroles:\n  r:\n    scope: all\n    methods: [/a.B/C]\n",
			want: []string{`p.yaml:4: role "r": scope "all"`}},
		{name: "role without methods", yaml: "trust_domain: bank.local\nroles:\n  r: { scope: any }\n",
			want: []string{`p.yaml:3: role "r" grants no methods`}},
		{name: "other trust domain", yaml: `trust_domain: bank.local
identities:
  - name: x
    match: { spiffe_id: "spiffe://evil.example/x" }
    roles: [authenticated]
`, want: []string{`p.yaml:4: identity "x": spiffe://evil.example/x is outside trust domain bank.local`}},
		{name: "prefix without path", yaml: `trust_domain: bank.local
identities:
  - name: everyone
    match: { spiffe_id_prefix: "spiffe://bank.local/" }
    roles: [authenticated]
`, want: []string{`p.yaml:4: identity "everyone": spiffe_id_prefix`, "needs a path"}},
		{name: "prefix without its trailing slash", yaml: `trust_domain: bank.local
identities:
  - name: tellers
    match: { spiffe_id_prefix: "spiffe://bank.local/teller" }
    roles: [authenticated]
`, want: []string{`p.yaml:4: identity "tellers": spiffe_id_prefix "spiffe://bank.local/teller" must end with "/"`, "use spiffe_id"}},
		{name: "prefix with an empty segment", yaml: `trust_domain: bank.local
identities:
  - name: tellers
    match: { spiffe_id_prefix: "spiffe://bank.local/teller//" }
    roles: [authenticated]
`, want: []string{`p.yaml:4: identity "tellers": spiffe_id_prefix "spiffe://bank.local/teller//": path cannot have a trailing slash`}},
		{name: "bad glob", yaml: `trust_domain: bank.local
identities:
  - name: x
    match: { spiffe_id_glob: "spiffe://bank.local/[" }
    roles: [authenticated]
`, want: []string{`p.yaml:4: identity "x": spiffe_id_glob`}},
		{name: "glob in other trust domain", yaml: `trust_domain: bank.local
identities:
  - name: x
    match: { spiffe_id_glob: "spiffe://*/customer/*" }
    roles: [authenticated]
`, want: []string{`p.yaml:4: identity "x": spiffe_id_glob "spiffe://*/customer/*" must start with "spiffe://bank.local/"`}},
		{name: "bad fingerprint", yaml: `trust_domain: bank.local
identities:
  - name: x
    match: { fingerprint_sha256: "abcd" }
    roles: [authenticated]
`, want: []string{`p.yaml:4: identity "x": fingerprint_sha256 must be 32 bytes of hex`}},
		{name: "empty match and duplicate name", yaml: `trust_domain: bank.local
identities:
  - name: x
    match: { subject_cn: a }
    roles: [authenticated]
  - name: x
    match: {}
    roles: []
`, want: []string{`p.yaml:6: identity "x" defined twice`, "p.yaml:6: identity 2: match needs at least one", "p.yaml:6: identity 2 maps to no roles"}},
		{name: "on_behalf with a bad scope and a bad method", yaml: `trust_domain: bank.local
roles:
  r:
    methods: [/a.B/C]
    on_behalf:
      scope: everyone
      methods: [/a.B/C, a.B/D, /a.B/C]
`, want: []string{`p.yaml:6: role "r" on_behalf: scope "everyone"`, `p.yaml:7: role "r" on_behalf: "a.B/D" is not a full method name`, `p.yaml:7: role "r" on_behalf: method "/a.B/C" listed twice`}},
		{name: "on_behalf without methods", yaml: "trust_domain: bank.local\nroles:\n  r:\n    methods: [/a.B/C]\n    on_behalf: { scope: own }\n",
			want: []string{`p.yaml:5: role "r" on_behalf grants no methods`}},
		{name: "unknown on_behalf field", yaml: "trust_domain: bank.local\nroles:\n  r:\n    on_behalf: { scope: own, method: [/a.B/C] }\n",
			want: []string{`p.yaml:4: unknown field method`}},
		{name: "on_behalf for every identity", yaml: "trust_domain: bank.local\nroles:\n  authenticated:\n    methods: [/a.B/C]\n    on_behalf: { methods: [/a.B/C] }\n",
			want: []string{`p.yaml:5: role "authenticated" on_behalf: not allowed`}},
		{name: "every identity delegating", yaml: "trust_domain: bank.local\nroles:\n  authenticated:\n    delegate: true\n    methods: [/a.B/C]\n",
			want: []string{`p.yaml:4: role "authenticated" may not delegate`}},
		{name: "delegate without methods", yaml: "trust_domain: bank.local\nroles:\n  r:\n    delegate: true\n    on_behalf: { methods: [/a.B/C] }\n",
			want: []string{`p.yaml:3: role "r" may delegate but grants no methods to delegate`}},
		{name: "two documents", yaml: "trust_domain: bank.local\n---\ntrust_domain: x\n", want: []string{"p.yaml:2: more than one YAML document"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := authz.ParsePolicy("p.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParsePolicy succeeded: %+v", p)
			}
			var le *authz.LineError
			if !errors.As(err, &le) {
				t.Errorf("error %T is not a *LineError", err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte("trust_domain: bank.local\nidentities: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := authz.LoadPolicy(path)
	if err == nil || !strings.Contains(err.Error(), path+":2: ") {
		t.Fatalf("LoadPolicy error = %v, want %s:2: ...", err, path)
	}
	if _, err := authz.LoadPolicy(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("LoadPolicy(missing) error = %v", err)
	}
}

func TestCheck(t *testing.T) {
	f := newFixture(t)
	services := map[string]grpc.ServiceInfo{
		"bank.accounts.v1.AccountsService": {Methods: []grpc.MethodInfo{
			{Name: "OpenAccount"}, {Name: "GetAccount"}, {Name: "Transfer"}, {Name: "WatchLedger"}, {Name: "Deposit"}, {Name: "Withdraw"},
		}},
		"bank.identity.v1.IdentityService": {Methods: []grpc.MethodInfo{{Name: "WhoAmI"}}},
		"grpc.health.v1.Health":            {Methods: []grpc.MethodInfo{{Name: "Check"}, {Name: "Watch"}, {Name: "List"}}},
	}
	err := f.policy.Check(services)
	if !errors.Is(err, authz.ErrUncoveredMethods) {
		t.Fatalf("Check() = %v, want ErrUncoveredMethods", err)
	}
	for _, m := range []string{"/bank.accounts.v1.AccountsService/Deposit", "/bank.accounts.v1.AccountsService/Withdraw"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("Check() error %q does not name %s", err, m)
		}
	}
	if strings.Contains(err.Error(), "OpenAccount") || strings.Contains(err.Error(), "Health") {
		t.Errorf("Check() error %q names a covered method", err)
	}
	delete(services, "bank.accounts.v1.AccountsService")
	if err := f.policy.Check(services); err != nil {
		t.Fatalf("Check() on covered services = %v", err)
	}
	unused := f.policy.Unused(services)
	if len(unused) != 4 || unused[0] != mGet || unused[3] != mWatch {
		t.Errorf("Unused() = %v, want the four AccountsService rules (Transfer once, from methods and on_behalf)", unused)
	}
}

// TestCheckDelegation: a method a role may delegate must be granted on_behalf by some
// role, or every delegated call of it would be refused; the check names it at start-up.
func TestCheckDelegation(t *testing.T) {
	services := map[string]grpc.ServiceInfo{
		"a.v1.Svc": {Methods: []grpc.MethodInfo{{Name: "Get"}, {Name: "Put"}}},
	}
	tests := []struct {
		name    string
		yaml    string
		missing []string // methods the error must name; none: Check passes
	}{
		{name: "delegated and granted on_behalf", yaml: `trust_domain: bank.local
roles:
  gw: { delegate: true, methods: [/a.v1.Svc/Put, /a.v1.Svc/Get] }
  user: { methods: [/a.v1.Svc/Get], on_behalf: { methods: [/a.v1.Svc/Put, /a.v1.Svc/Get] } }
`},
		{name: "on_behalf by service wildcard", yaml: `trust_domain: bank.local
roles:
  gw: { delegate: true, methods: [/a.v1.Svc/Put, /a.v1.Svc/Get] }
  user: { on_behalf: { methods: ["/a.v1.Svc/*"] } }
`},
		{name: "a policy from before on_behalf", yaml: `trust_domain: bank.local
roles:
  gw: { delegate: true, methods: [/a.v1.Svc/Put] }
  user: { methods: [/a.v1.Svc/Get] }
`, missing: []string{"/a.v1.Svc/Put"}},
		{name: "one delegated method without on_behalf", yaml: `trust_domain: bank.local
roles:
  gw: { delegate: true, methods: ["/a.v1.Svc/*"] }
  user: { on_behalf: { methods: [/a.v1.Svc/Get] } }
`, missing: []string{"/a.v1.Svc/Put"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := authz.ParsePolicy("p.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = p.Check(services)
			if len(tt.missing) == 0 {
				if err != nil {
					t.Fatalf("Check() = %v", err)
				}
				return
			}
			if !errors.Is(err, authz.ErrUndelegableMethods) || errors.Is(err, authz.ErrUncoveredMethods) {
				t.Fatalf("Check() = %v, want ErrUndelegableMethods alone", err)
			}
			for _, m := range tt.missing {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("Check() error %q does not name %s", err, m)
				}
			}
			if strings.Contains(err.Error(), "/a.v1.Svc/Get") {
				t.Errorf("Check() error %q names a method granted on_behalf", err)
			}
		})
	}
}
