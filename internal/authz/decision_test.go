package authz_test

import (
	"context"
	"slices"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
)

// TestMatchers maps certificates to roles, one matcher kind (and its near misses) per case.
func TestMatchers(t *testing.T) {
	f := newFixture(t)
	p := f.pki
	client := func(id string) func(testing.TB) *pki.Leaf {
		return func(tb testing.TB) *pki.Leaf { return p.Client(tb, id) }
	}
	issue := func(req pki.Request) func(testing.TB) *pki.Leaf {
		return func(tb testing.TB) *pki.Leaf {
			req.Usage = pki.ClientAuth
			return p.Issue(tb, req)
		}
	}
	tests := []struct {
		name  string
		leaf  func(testing.TB) *pki.Leaf
		roles []string
	}{
		{name: "prefix", leaf: client("spiffe://bank.local/teller/tina"), roles: []string{"teller"}},
		{name: "prefix, deeper path", leaf: client("spiffe://bank.local/teller/branch/tom"), roles: []string{"teller"}},
		{name: "prefix is by segment", leaf: client("spiffe://bank.local/tellerx/tina"), roles: []string{}},
		{name: "prefix needs a name under it", leaf: client("spiffe://bank.local/teller"), roles: []string{}},
		{name: "glob", leaf: client("spiffe://bank.local/customer/alice"), roles: []string{"customer"}},
		{name: "glob does not cross segments", leaf: client("spiffe://bank.local/customer/alice/extra"), roles: []string{}},
		{name: "exact", leaf: client("spiffe://bank.local/auditor/audrey"), roles: []string{"auditor"}},
		{name: "exact, not a prefix", leaf: client("spiffe://bank.local/auditor/audrey2"), roles: []string{}},
		{name: "prefix and OU", leaf: issue(pki.Request{CommonName: "o", OrgUnit: []string{"Finance", "Operations"}, SPIFFEIDs: []string{"spiffe://bank.local/ops/olga"}}), roles: []string{"auditor"}},
		{name: "OU is exact", leaf: issue(pki.Request{CommonName: "o", OrgUnit: []string{"Operations Team"}, SPIFFEIDs: []string{"spiffe://bank.local/ops/olga"}}), roles: []string{}},
		{name: "OU without the prefix", leaf: issue(pki.Request{CommonName: "o", OrgUnit: []string{"Operations"}, SPIFFEIDs: []string{"spiffe://bank.local/dev/dan"}}), roles: []string{}},
		{name: "CN", leaf: issue(pki.Request{CommonName: "batch-runner", SPIFFEIDs: []string{"spiffe://bank.local/batch/1"}}), roles: []string{"teller"}},
		{name: "CN is exact", leaf: issue(pki.Request{CommonName: "batch-runner-2", SPIFFEIDs: []string{"spiffe://bank.local/batch/1"}}), roles: []string{}},
		{name: "DNS SAN, case-insensitive", leaf: issue(pki.Request{CommonName: "g", DNSNames: []string{"gateway.bank.local"}, SPIFFEIDs: []string{"spiffe://bank.local/gw"}}), roles: []string{"auditor"}},
		{name: "DNS SAN is exact", leaf: issue(pki.Request{CommonName: "g", DNSNames: []string{"evil-gateway.bank.local"}, SPIFFEIDs: []string{"spiffe://bank.local/gw"}}), roles: []string{}},
		{name: "fingerprint pin", leaf: func(testing.TB) *pki.Leaf { return f.pinned }, roles: []string{"auditor"}},
		{name: "fingerprint pin, same ID other cert", leaf: client("spiffe://bank.local/robot/pinned"), roles: []string{}},
		{name: "several entries", leaf: issue(pki.Request{CommonName: "batch-runner", SPIFFEIDs: []string{"spiffe://bank.local/auditor/audrey"}}), roles: []string{"auditor", "teller"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.policy.Decide(mustIdentity(t, tt.leaf(t)), mWhoAmI)
			if !d.Allowed {
				t.Fatalf("WhoAmI denied: %s", d.Rule)
			}
			if got := append([]string{}, d.Roles...); !slices.Equal(got, tt.roles) {
				t.Errorf("roles = %v, want %v", got, tt.roles)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	f := newFixture(t)
	p := f.pki
	teller := mustIdentity(t, p.Client(t, "spiffe://bank.local/teller/tina"))
	alice := mustIdentity(t, p.Client(t, "spiffe://bank.local/customer/alice"))
	payments := mustIdentity(t, p.Server(t, "spiffe://bank.local/service/payments"))
	intern := mustIdentity(t, p.Client(t, "spiffe://bank.local/intern/ivan"))
	auditor := mustIdentity(t, p.Client(t, "spiffe://bank.local/auditor/audrey"))
	foreign, err := identity.FromCertificate(p.Client(t, "spiffe://other.example/teller/tina").Cert, spiffeid.RequireTrustDomainFromString("other.example"))
	if err != nil {
		t.Fatal(err)
	}
	aliceID := alice.ID.String()

	tests := []struct {
		name        string
		id          identity.Identity
		method      string
		onBehalfOf  []string
		allowed     bool
		ownOnly     bool
		wantSubject string
		subjectOwn  bool
	}{
		{name: "teller opens", id: teller, method: mOpen, allowed: true},
		{name: "teller may not transfer", id: teller, method: mTransfer},
		{name: "customer reads own", id: alice, method: mGet, allowed: true, ownOnly: true},
		{name: "customer may not open", id: alice, method: mOpen},
		{name: "intern: whoami", id: intern, method: mWhoAmI, allowed: true, ownOnly: true},
		{name: "intern: health by service wildcard", id: intern, method: mHealth, allowed: true, ownOnly: true},
		{name: "intern: nothing else", id: intern, method: mGet},
		{name: "unknown method", id: teller, method: "/bank.accounts.v1.AccountsService/Nope"},
		{name: "empty method", id: teller, method: ""},
		{name: "foreign trust domain", id: foreign, method: mWhoAmI},
		{name: "payments alone", id: payments, method: mTransfer, allowed: true, ownOnly: true},
		{name: "payments for alice", id: payments, method: mTransfer, onBehalfOf: []string{aliceID}, allowed: true, ownOnly: true, wantSubject: aliceID, subjectOwn: true},
		{name: "payments for a teller", id: payments, method: mTransfer, onBehalfOf: []string{teller.ID.String()}, allowed: true, ownOnly: true, wantSubject: teller.ID.String(), subjectOwn: false},
		{name: "payments for an unknown user", id: payments, method: mTransfer, onBehalfOf: []string{"spiffe://bank.local/nobody/x"}},
		{name: "payments for an auditor", id: payments, method: mTransfer, onBehalfOf: []string{auditor.ID.String()}},
		{name: "payments for an identity only a CN entry maps", id: payments, method: mTransfer, onBehalfOf: []string{"spiffe://bank.local/batch/1"}},
		{name: "payments for alice, a method it may not call", id: payments, method: mGet, onBehalfOf: []string{aliceID}},
		{name: "payments for alice, a method only a role without delegate grants it", id: payments, method: mWhoAmI, onBehalfOf: []string{aliceID}},
		{name: "payments for itself", id: payments, method: mTransfer, onBehalfOf: []string{payments.ID.String()}},
		{name: "payments: two subjects", id: payments, method: mTransfer, onBehalfOf: []string{aliceID, teller.ID.String()}},
		{name: "payments: malformed subject", id: payments, method: mTransfer, onBehalfOf: []string{"alice"}},
		{name: "payments: empty subject", id: payments, method: mTransfer, onBehalfOf: []string{""}},
		{name: "payments: foreign subject", id: payments, method: mTransfer, onBehalfOf: []string{"spiffe://other.example/customer/alice"}},
		{name: "customer spoofing delegation", id: alice, method: mGet, onBehalfOf: []string{teller.ID.String()}},
		{name: "teller spoofing delegation", id: teller, method: mOpen, onBehalfOf: []string{aliceID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.policy.Decide(tt.id, tt.method, tt.onBehalfOf...)
			if d.Allowed != tt.allowed {
				t.Fatalf("Allowed = %v, want %v (rule: %s)", d.Allowed, tt.allowed, d.Rule)
			}
			if d.Rule == "" {
				t.Error("no rule recorded for the audit log")
			}
			if !tt.allowed {
				return
			}
			if d.OwnOnly != tt.ownOnly {
				t.Errorf("OwnOnly = %v, want %v", d.OwnOnly, tt.ownOnly)
			}
			owner, own := d.Principal()
			if tt.wantSubject == "" {
				if d.OnBehalfOf != nil || owner != tt.id.ID || own != tt.ownOnly {
					t.Errorf("Principal() = %s, %v; want the caller", owner, own)
				}
				return
			}
			if d.OnBehalfOf == nil || owner.String() != tt.wantSubject || own != tt.subjectOwn {
				t.Errorf("Principal() = %s, %v; want %s, %v", owner, own, tt.wantSubject, tt.subjectOwn)
			}
		})
	}
}

func TestDecisionContext(t *testing.T) {
	if _, ok := authz.FromContext(context.Background()); ok {
		t.Fatal("FromContext on an empty context reported a decision")
	}
	want := authz.Decision{Allowed: true, Rule: "r", Identity: identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local/customer/alice")}}
	ctx := authz.NewContext(context.Background(), want)
	want.Rule = "changed after" // the context keeps its own copy
	got, ok := authz.FromContext(ctx)
	if !ok || got.Rule != "r" || !got.Allowed {
		t.Fatalf("FromContext() = %+v, %v", got, ok)
	}
	// The decision's identity is the call's identity (the rate limiter and the stream
	// cap read it from there).
	if id, ok := identity.FromContext(ctx); !ok || id.ID != want.Identity.ID {
		t.Fatalf("identity.FromContext() = %v, %v; want %v", id.ID, ok, want.Identity.ID)
	}
}
