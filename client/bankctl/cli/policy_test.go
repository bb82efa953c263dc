package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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

const servicesDir = "../../../services"

const (
	mGetAccount = "/bank.accounts.v1.AccountsService/GetAccount"
	mTransfer   = "/bank.accounts.v1.AccountsService/Transfer"
	mDeposit    = "/bank.accounts.v1.AccountsService/Deposit"
	alice       = "spiffe://bank.local/customer/alice"
	tina        = "spiffe://bank.local/teller/tina"
	paymentsID  = "spiffe://bank.local/service/payments"
)

// TestEmbeddedPoliciesMatchServices keeps --policy accounts / payments the policy the
// services embed: a copy that drifted would make every check answer for another policy.
func TestEmbeddedPoliciesMatchServices(t *testing.T) {
	for name, embedded := range embeddedPolicies {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(servicesDir, name, "policy.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(embedded, want) {
				t.Errorf("policies/%s.yaml differs from services/%s/policy.yaml: run 'go generate ./client/bankctl/cli'", name, name)
			}
		})
	}
}

// servedBy lists the methods each service serves: its own service and the ones the shared
// runtime adds (identity, health, reflection).
var servedBy = map[string][]*grpc.ServiceDesc{
	serviceAccounts: {&accountsv1.AccountsService_ServiceDesc},
	servicePayments: {&paymentsv1.PaymentsService_ServiceDesc},
}

func servedMethods(service string) []string {
	var out []string
	descs := append([]*grpc.ServiceDesc{&identityv1.IdentityService_ServiceDesc, &healthpb.Health_ServiceDesc,
		&reflectionv1.ServerReflection_ServiceDesc, &reflectionv1alpha.ServerReflection_ServiceDesc}, servedBy[service]...)
	for _, sd := range descs {
		for _, m := range sd.Methods {
			out = append(out, "/"+sd.ServiceName+"/"+m.MethodName)
		}
		for _, s := range sd.Streams {
			out = append(out, "/"+sd.ServiceName+"/"+s.StreamName)
		}
	}
	return out
}

// TestShippedPolicyCases runs the case tables shipped for both default policies, against
// the embedded default and against the service's file, and checks that they cover every
// role (and no role) x every served method, and delegation.
func TestShippedPolicyCases(t *testing.T) {
	for _, service := range []string{serviceAccounts, servicePayments} {
		casesPath := filepath.Join(servicesDir, service, "policy_test_cases.yaml")
		for _, policyArg := range []string{service, filepath.Join(servicesDir, service, "policy.yaml")} {
			t.Run(service+"/"+filepath.Base(policyArg), func(t *testing.T) {
				r := runCLI(t, nil, "policy", "test", policyArg, casesPath)
				if r.code != ExitOK {
					t.Fatalf("exit code %d, want 0\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
				}
				if !regexp.MustCompile(`(?m)^\d+ cases, \d+ passed, 0 failed`).MatchString(r.stdout) {
					t.Errorf("no summary line:\n%s", r.stdout)
				}
			})
		}
		t.Run(service+"/coverage", func(t *testing.T) {
			p, err := loadPolicy(service)
			if err != nil {
				t.Fatal(err)
			}
			cases, err := loadCases(casesPath)
			if err != nil {
				t.Fatal(err)
			}
			roleKey := func(id string) string {
				e, err := p.Explain(identity.Identity{ID: spiffeid.RequireFromString(id)}, "/x.Y/Z")
				if err != nil {
					t.Fatal(err)
				}
				return strings.Join(e.Decision.Roles, " ")
			}
			covered := make(map[string]bool)
			delegated := 0
			for _, c := range cases {
				if c.OnBehalfOf != "" {
					delegated++
					continue
				}
				covered[roleKey(c.SPIFFEID)+"|"+c.Method] = true
			}
			var raw struct {
				Roles map[string]yaml.Node `yaml:"roles"`
			}
			if err := yaml.Unmarshal(embeddedPolicies[service], &raw); err != nil {
				t.Fatal(err)
			}
			roles := []string{""} // an identity no entry maps to a role
			for role := range raw.Roles {
				if role != authz.ImplicitRole {
					roles = append(roles, role)
				}
			}
			for _, role := range roles {
				for _, m := range servedMethods(service) {
					if !covered[role+"|"+m] {
						t.Errorf("no direct case for role %q calling %s", role, m)
					}
				}
			}
			if delegated < 5 {
				t.Errorf("%d delegation cases, want at least 5", delegated)
			}
		})
	}
}

// TestPolicyTestCatchesRegressions edits the accounts policy the way a careless change
// would and checks that the shipped table fails, naming the cases, with exit code 1.
func TestPolicyTestCatchesRegressions(t *testing.T) {
	casesPath := filepath.Join(servicesDir, serviceAccounts, "policy_test_cases.yaml")
	tests := []struct {
		name     string
		old, new string
		wantFail []string // case names that must be reported
	}{
		{name: "customer scope widened to any", old: "    scope: own\n    methods:\n      - /bank.accounts.v1.AccountsService/GetAccount",
			new:      "    scope: any\n    methods:\n      - /bank.accounts.v1.AccountsService/GetAccount",
			wantFail: []string{"customer GetAccount: refused on a resource of someone else"}},
		{name: "customer may transfer directly", old: "      - /bank.accounts.v1.AccountsService/ListAccounts\n    on_behalf:\n      scope: own",
			new:      "      - /bank.accounts.v1.AccountsService/ListAccounts\n      - /bank.accounts.v1.AccountsService/Transfer\n    on_behalf:\n      scope: own",
			wantFail: []string{"customer Transfer: denied"}},
		{name: "on_behalf of a customer widened to any", old: "    on_behalf:\n      scope: own", new: "    on_behalf:\n      scope: any",
			wantFail: []string{"payments for a customer: refused on an account the customer does not own"}},
		{name: "auditor given an on_behalf rule", old: "      - /bank.accounts.v1.AccountsService/ListTransactions\n",
			new:      "      - /bank.accounts.v1.AccountsService/ListTransactions\n    on_behalf:\n      methods: [/bank.accounts.v1.AccountsService/Transfer]\n",
			wantFail: []string{"payments for an auditor: auditors have no on_behalf rule"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(accountsPolicy, []byte(tt.old)) {
				t.Fatalf("the accounts policy no longer contains %q", tt.old)
			}
			path := filepath.Join(t.TempDir(), "policy.yaml")
			writeFile(t, path, bytes.Replace(accountsPolicy, []byte(tt.old), []byte(tt.new), 1))
			r := runCLI(t, nil, "policy", "test", path, casesPath)
			if r.code != ExitFailure {
				t.Errorf("exit code %d, want %d\n%s%s", r.code, ExitFailure, r.stdout, r.stderr)
			}
			for _, name := range tt.wantFail {
				if !regexp.MustCompile(`(?m)^FAIL \S+:\d+: ` + regexp.QuoteMeta(name) + `: got `).MatchString(r.stdout) {
					t.Errorf("no FAIL line for %q:\n%s", name, r.stdout)
				}
			}
		})
	}
}

// TestPolicyCheck runs policy check on the embedded defaults: the verdict line, the exit
// code and the facts of the explanation.
func TestPolicyCheck(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // lines or fragments of stdout, in order
	}{
		{name: "teller deposits anywhere", args: []string{"--policy", "accounts", "--spiffe-id", tina, "--method", mDeposit},
			wantCode: ExitOK, wantOut: []string{"allow\n", `"tellers" -> [teller]`, `role "teller" via ` + mDeposit + `, scope any (held)`, "scope:", "any: any resource"}},
		{name: "customer reads its own account", args: []string{"--policy", "accounts", "--spiffe-id", alice, "--method", mGetAccount, "--owned"},
			wantCode: ExitOK, wantOut: []string{"allow\n", `role "auditor" via ` + mGetAccount + `, scope any (not held)`, `role "customer" via ` + mGetAccount + `, scope own (held)`, "own: the resource belongs to " + alice}},
		{name: "customer reads another's account", args: []string{"--policy", "accounts", "--spiffe-id", alice, "--method", mGetAccount, "--not-owned"},
			wantCode: ExitPermission, wantOut: []string{"deny\n", "scope own the service refuses a resource " + alice + " does not own"}},
		{name: "customer, ownership not said", args: []string{"--policy", "accounts", "--spiffe-id", alice, "--method", mGetAccount},
			wantCode: ExitOK, wantOut: []string{"allow\n", "only resources " + alice + " owns"}},
		{name: "customer may not transfer itself", args: []string{"--policy", "accounts", "--spiffe-id", alice, "--method", mTransfer},
			wantCode: ExitPermission, wantOut: []string{"deny\n", `role "payments-service" via ` + mTransfer + `, scope own, may delegate (not held)`, "denied:", "no role of [customer] grants " + mTransfer}},
		{name: "unknown identity", args: []string{"--policy", "payments", "--spiffe-id", "spiffe://bank.local/intern/ivan", "--method", "/bank.payments.v1.PaymentsService/CreatePayment"},
			wantCode: ExitPermission, wantOut: []string{"deny\n", "none (the caller holds only role authenticated)"}},
		{name: "payments for a customer", args: []string{"--policy", "accounts", "--spiffe-id", paymentsID, "--method", mTransfer, "--on-behalf-of", alice, "--owned"},
			wantCode: ExitOK, wantOut: []string{"allow\n", `"payments" -> [payments-service]`, "may delegate (held)", "on behalf of:", alice, `"customers" -> [customer]`,
				`role "customer" via ` + mTransfer + `, scope own (held by the end user)`, `role "teller" via ` + mTransfer + `, scope any (not held)`, "own: the resource belongs to " + alice}},
		{name: "payments for a customer, another's account", args: []string{"--policy", "accounts", "--spiffe-id", paymentsID, "--method", mTransfer, "--on-behalf-of", alice, "--not-owned"},
			wantCode: ExitPermission, wantOut: []string{"deny\n", "refuses a resource " + alice + " does not own"}},
		{name: "payments for an auditor", args: []string{"--policy", "accounts", "--spiffe-id", paymentsID, "--method", mTransfer, "--on-behalf-of", "spiffe://bank.local/auditor/audrey"},
			wantCode: ExitPermission, wantOut: []string{"deny\n", `"auditors" -> [auditor]`, "no role of the end user [auditor] grants " + mTransfer + " on_behalf"}},
		{name: "customer names an end user", args: []string{"--policy", "accounts", "--spiffe-id", alice, "--method", mGetAccount, "--on-behalf-of", tina, "--owned"},
			wantCode: ExitPermission, wantOut: []string{"deny\n", "none of which may delegate"}},
		{name: "caller of another trust domain", args: []string{"--policy", "accounts", "--spiffe-id", "spiffe://other.example/teller/tina", "--method", "/bank.identity.v1.IdentityService/WhoAmI"},
			wantCode: ExitPermission, wantOut: []string{"deny\n", "outside trust domain bank.local", "denied:"}},
		{name: "teller names an end user", args: []string{"--policy", "accounts", "--spiffe-id", tina, "--method", mDeposit, "--on-behalf-of", alice},
			wantCode: ExitPermission, wantOut: []string{"deny\n", "on behalf of:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, append([]string{"policy", "check"}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			rest := r.stdout
			for i, want := range tt.wantOut {
				j := strings.Index(rest, want)
				if j < 0 || (i == 0 && j != 0) {
					t.Fatalf("stdout lacks %q (in order, the verdict first):\n%s", want, r.stdout)
				}
				rest = rest[j+len(want):]
			}
		})
	}
}

// TestPolicyCheckJSON checks the machine-readable verdict.
func TestPolicyCheckJSON(t *testing.T) {
	r := runCLI(t, nil, "--output", "json", "policy", "check", "--policy", "accounts", "--spiffe-id", paymentsID,
		"--method", mTransfer, "--on-behalf-of", tina)
	if r.code != ExitOK {
		t.Fatalf("exit code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var v verdictJSON
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if v.Decision != "allow" || v.Scope != "any" || v.Principal != tina || v.OnBehalfOf == nil || !v.OnBehalfOf.Valid ||
		strings.Join(v.OnBehalfOf.Roles, ",") != "teller" || strings.Join(v.Roles, ",") != "payments-service" {
		t.Errorf("verdict = %+v", v)
	}
}

// TestPolicyUsage checks the mistakes that exit 2 with a pointer to the problem.
func TestPolicyUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, []byte("trust_domain: bank.local\nroles:\n  r:\n    methodz: [/a.B/C]\n"))
	badCases := filepath.Join(dir, "cases.yaml")
	writeFile(t, badCases, []byte("- name: a\n  spiffe_id: "+alice+"\n  method: "+mGetAccount+"\n  expect: allow\n- name: b\n  spiffe_id: "+alice+"\n  method: "+mGetAccount+"\n  expect: maybe\n"))
	unknownField := filepath.Join(dir, "unknown.yaml")
	writeFile(t, unknownField, []byte("- name: a\n  spiffe_id: "+alice+"\n  methd: "+mGetAccount+"\n  expect: allow\n"))
	check := func(args ...string) []string {
		return append([]string{"policy", "check", "--spiffe-id", alice, "--method", mGetAccount}, args...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "bad policy file", args: check("--policy", bad), want: bad + ":4: unknown field methodz"},
		{name: "missing policy file", args: check("--policy", "nope.yaml"), want: "no such file (in " + mustAbs(t, ".") + ")"},
		{name: "malformed method", args: []string{"policy", "check", "--policy", "accounts", "--spiffe-id", alice, "--method", "GetAccount"}, want: "not a full method name"},
		{name: "wildcard method", args: []string{"policy", "check", "--policy", "accounts", "--spiffe-id", alice, "--method", "/bank.accounts.v1.AccountsService/*"}, want: "not a full method name"},
		{name: "malformed SPIFFE ID", args: []string{"policy", "check", "--policy", "accounts", "--spiffe-id", "alice", "--method", mGetAccount}, want: `--spiffe-id "alice"`},
		{name: "owned and not owned", args: check("--policy", "accounts", "--owned", "--not-owned"), want: "alternatives"},
		{name: "missing method", args: []string{"policy", "check", "--policy", "accounts", "--spiffe-id", alice}, want: `"method"`},
		{name: "bad expectation", args: []string{"policy", "test", "accounts", badCases}, want: badCases + `:5: expect "maybe"`},
		{name: "unknown case field", args: []string{"policy", "test", "accounts", unknownField}, want: unknownField + ":3: unknown field methd"},
		{name: "missing cases file", args: []string{"policy", "test", "accounts", filepath.Join(dir, "none.yaml")}, want: "no such file (looked in " + dir + ")"},
		{name: "test wants two arguments", args: []string{"policy", "test", "accounts"}, want: "accepts 2 arg(s)"},
		{name: "mistyped policy subcommand", args: []string{"policy", "chek"}, want: `did you mean "check"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, tt.args...)
			if r.code != ExitUsage {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, ExitUsage, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, r.stderr)
			}
		})
	}
}

func mustAbs(tb testing.TB, path string) string {
	tb.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		tb.Fatal(err)
	}
	return abs
}

// TestPolicyCheckAgreesWithServer asks policy check and a live server (the bank's TLS and
// authorization interceptor with the same policy file) the same questions: check allows
// exactly the calls the server's authorizer lets through to the handler (which here, a
// double, checks no ownership).
func TestPolicyCheckAgreesWithServer(t *testing.T) {
	f := newFixtures(t)
	env := map[string]string{"BANK_CERTS_DIR": f.dir, "BANK_ADDR": startBank(t, f)}
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, policyFile, []byte(testPolicy))
	calls := []struct {
		method string
		args   []string
	}{
		{"/bank.identity.v1.IdentityService/WhoAmI", []string{"whoami"}},
		{mGetAccount, []string{"accounts", "get", "--id", aliceAccount}},
		{mDeposit, []string{"accounts", "deposit", "--account-id", aliceAccount, "--amount", "1", "--idempotency-key", "k1"}},
		{"/bank.accounts.v1.AccountsService/OpenAccount", []string{"accounts", "open", "--owner", alice}},
		{"/bank.accounts.v1.AccountsService/WatchLedger", []string{"ledger", "watch", "--limit", "1"}},
	}
	callers := map[string]string{"alice": alice, "teller": tina}
	for as, id := range callers {
		for _, onBehalf := range []string{"", alice} {
			for _, c := range calls {
				t.Run(fmt.Sprintf("%s %s on behalf %q", as, shortMethod(c.method), onBehalf), func(t *testing.T) {
					global := []string{"--as", as}
					checkArgs := []string{"policy", "check", "--policy", policyFile, "--spiffe-id", id, "--method", c.method}
					if onBehalf != "" {
						global = append(global, "--on-behalf-of", onBehalf)
						checkArgs = append(checkArgs, "--on-behalf-of", onBehalf)
					}
					check := runCLI(t, nil, checkArgs...)
					if check.code != ExitOK && check.code != ExitPermission {
						t.Fatalf("policy check exit %d\n%s%s", check.code, check.stdout, check.stderr)
					}
					live := runCLI(t, env, append(global, c.args...)...)
					if live.code != ExitOK && live.code != ExitFailure && live.code != ExitPermission {
						t.Fatalf("the call did not reach the authorizer: exit %d\n%s", live.code, live.stderr)
					}
					checkAllows, serverAllows := check.code == ExitOK, live.code != ExitPermission
					if checkAllows != serverAllows {
						t.Errorf("policy check allows: %v, the server lets the call through: %v (exit %d)\ncheck: %s\nserver: %s",
							checkAllows, serverAllows, live.code, check.stdout, live.stderr)
					}
				})
			}
		}
	}
}
