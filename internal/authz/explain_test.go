package authz_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
)

// TestExplainAgreesWithDecide checks that Explain's decision is Decide's, whatever the
// caller, method and end user, and that its facts say which entries and rules were involved.
func TestExplainAgreesWithDecide(t *testing.T) {
	f := newFixture(t)
	idOnly := func(s string) identity.Identity { return identity.Identity{ID: spiffeid.RequireFromString(s)} }
	tests := []struct {
		name        string
		id          identity.Identity
		method      string
		onBehalfOf  []string
		wantAllowed bool
		wantEntries []string
		wantHeld    []string // roles of Grants the caller holds
		wantSubject []string // entries of the end user
		wantOBHeld  []string // on_behalf grants the end user holds
	}{
		{name: "teller opens", id: idOnly("spiffe://bank.local/teller/tina"), method: mOpen, wantAllowed: true,
			wantEntries: []string{"tellers"}, wantHeld: []string{"teller"}},
		{name: "customer may not open", id: idOnly("spiffe://bank.local/customer/alice"), method: mOpen,
			wantEntries: []string{"customers"}},
		{name: "unknown identity, implicit role", id: idOnly("spiffe://bank.local/intern/ivan"), method: mWhoAmI, wantAllowed: true,
			wantHeld: []string{"authenticated"}},
		{name: "health through the wildcard", id: idOnly("spiffe://bank.local/intern/ivan"), method: mHealth, wantAllowed: true,
			wantHeld: []string{"authenticated"}},
		{name: "method no rule names", id: idOnly("spiffe://bank.local/teller/tina"), method: "/bank.accounts.v1.AccountsService/Nope",
			wantEntries: []string{"tellers"}},
		{name: "other trust domain", id: idOnly("spiffe://other.example/teller/tina"), method: mWhoAmI},
		{name: "delegated for a customer", id: idOnly("spiffe://bank.local/service/payments"), method: mTransfer,
			onBehalfOf: []string{"spiffe://bank.local/customer/alice"}, wantAllowed: true,
			wantEntries: []string{"payments"}, wantHeld: []string{"payments-service"},
			wantSubject: []string{"customers"}, wantOBHeld: []string{"customer"}},
		{name: "delegated for an auditor", id: idOnly("spiffe://bank.local/service/payments"), method: mTransfer,
			onBehalfOf:  []string{"spiffe://bank.local/auditor/audrey"},
			wantEntries: []string{"payments"}, wantHeld: []string{"payments-service"}, wantSubject: []string{"audrey"}},
		{name: "customer names an end user", id: idOnly("spiffe://bank.local/customer/alice"), method: mGet,
			onBehalfOf: []string{"spiffe://bank.local/customer/bob"}, wantEntries: []string{"customers"}, wantHeld: []string{"customer"},
			wantSubject: []string{"customers"}},
		{name: "malformed end user", id: idOnly("spiffe://bank.local/service/payments"), method: mTransfer,
			onBehalfOf: []string{"alice"}, wantEntries: []string{"payments"}, wantHeld: []string{"payments-service"}},
		{name: "CN entry with a certificate", id: mustIdentity(t, f.pki.Issue(t, pki.Request{CommonName: "batch-runner", SPIFFEIDs: []string{"spiffe://bank.local/batch/1"}, Usage: pki.ClientAuth})), method: mOpen,
			wantAllowed: true, wantEntries: []string{"batch by CN"}, wantHeld: []string{"teller"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := f.policy.Explain(tt.id, tt.method, tt.onBehalfOf...)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			d := f.policy.Decide(tt.id, tt.method, tt.onBehalfOf...)
			if !reflect.DeepEqual(e.Decision, d) {
				t.Errorf("Explain decision = %+v, Decide = %+v", e.Decision, d)
			}
			if e.Decision.Allowed != tt.wantAllowed {
				t.Errorf("allowed = %v (%s), want %v", e.Decision.Allowed, e.Decision.Rule, tt.wantAllowed)
			}
			if got := entryNames(e.Entries); !slices.Equal(got, tt.wantEntries) {
				t.Errorf("entries = %v, want %v", got, tt.wantEntries)
			}
			if got := heldRoles(e.Grants); !slices.Equal(got, tt.wantHeld) {
				t.Errorf("held grants = %v, want %v", got, tt.wantHeld)
			}
			if tt.onBehalfOf == nil {
				if e.OnBehalf != nil {
					t.Errorf("OnBehalf = %+v without delegation", e.OnBehalf)
				}
				return
			}
			if e.OnBehalf == nil {
				t.Fatal("OnBehalf is nil")
			}
			if got := entryNames(e.OnBehalf.Entries); !slices.Equal(got, tt.wantSubject) {
				t.Errorf("end user entries = %v, want %v", got, tt.wantSubject)
			}
			if got := heldRoles(e.OnBehalf.Grants); !slices.Equal(got, tt.wantOBHeld) {
				t.Errorf("end user held on_behalf grants = %v, want %v", got, tt.wantOBHeld)
			}
		})
	}
}

// TestExplainFacts checks the details a person reads: patterns, scopes, delegation and
// the entries an ID alone cannot satisfy.
func TestExplainFacts(t *testing.T) {
	f := newFixture(t)
	e, err := f.policy.Explain(identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local/ops/olga")}, mHealth)
	if err != nil {
		t.Fatal(err)
	}
	want := []authz.Grant{{Role: "authenticated", Pattern: "/grpc.health.v1.Health/*", Scope: authz.ScopeOwn, Held: true}}
	if !reflect.DeepEqual(e.Grants, want) {
		t.Errorf("grants = %+v, want %+v", e.Grants, want)
	}
	// "ops by OU" needs subject_ou too; the CN, DNS and fingerprint entries have no SPIFFE ID criterion.
	if got, want := entryNames(e.Unsatisfied), []string{"ops by OU", "batch by CN", "gateway by DNS", "pinned"}; !slices.Equal(got, want) {
		t.Errorf("unsatisfied = %v, want %v", got, want)
	}

	e, err = f.policy.Explain(identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local/service/payments")}, mTransfer, "spiffe://bank.local/teller/tina")
	if err != nil {
		t.Fatal(err)
	}
	if want := []authz.Grant{{Role: "payments-service", Pattern: mTransfer, Scope: authz.ScopeOwn, Delegate: true, Held: true}}; !reflect.DeepEqual(e.Grants, want) {
		t.Errorf("grants = %+v, want %+v", e.Grants, want)
	}
	wantOB := []authz.Grant{
		{Role: "customer", Pattern: mTransfer, Scope: authz.ScopeOwn},
		{Role: "teller", Pattern: mTransfer, Scope: authz.ScopeAny, Held: true},
	}
	got := slices.Clone(e.OnBehalf.Grants)
	slices.SortFunc(got, func(a, b authz.Grant) int { return strings.Compare(a.Role, b.Role) })
	if !reflect.DeepEqual(got, wantOB) {
		t.Errorf("on_behalf grants = %+v, want %+v", got, wantOB)
	}
	if owner, ownOnly := e.Decision.Principal(); owner.String() != "spiffe://bank.local/teller/tina" || ownOnly {
		t.Errorf("principal = %s own=%v, want the teller with scope any", owner, ownOnly)
	}
}

func TestExplainMalformedMethod(t *testing.T) {
	f := newFixture(t)
	id := identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local/teller/tina")}
	for _, m := range []string{"", "OpenAccount", "bank.accounts.v1.AccountsService/OpenAccount", "/bank.accounts.v1.AccountsService/*", "/bank.accounts.v1.AccountsService/Open/Account"} {
		t.Run(m, func(t *testing.T) {
			if _, err := f.policy.Explain(id, m); !errors.Is(err, authz.ErrMalformedMethod) {
				t.Errorf("Explain(%q) error = %v, want ErrMalformedMethod", m, err)
			}
		})
	}
}

func entryNames(es []authz.EntryMatch) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func heldRoles(gs []authz.Grant) []string {
	var out []string
	for _, g := range gs {
		if g.Held {
			out = append(out, g.Role)
		}
	}
	return out
}
