package authz

import (
	"os"
	"slices"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
)

// overlapPolicy has entries that overlap (several match one caller or end user), a role
// granted both by name and by service wildcard, a wildcard-only service, a non-SPIFFE
// matcher, an entry giving only the implicit role, and on_behalf rules by name and by
// wildcard with both scopes, so that every branch of the precomputed path meets the
// general one.
const overlapPolicy = `trust_domain: bank.local
identities:
  - name: staff
    match: { spiffe_id_prefix: "spiffe://bank.local/staff/" }
    roles: [reader]
  - name: staff leads
    match: { spiffe_id_glob: "spiffe://bank.local/staff/lead-*" }
    roles: [writer, authenticated]
  - name: by CN
    match: { subject_cn: "robot" }
    roles: [writer]
  - name: gateway
    match: { spiffe_id: "spiffe://bank.local/service/gateway" }
    roles: [gateway]
  - name: customers
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/" }
    roles: [customer]
  - name: guests
    match: { spiffe_id_glob: "spiffe://bank.local/guest/*" }
    roles: [authenticated]
  - name: writer
    match: { spiffe_id: "spiffe://bank.local/writer/w" }
    roles: [writer]
roles:
  reader: { scope: own, methods: [/a.v1.Svc/Get, /a.v1.Svc/List], on_behalf: { methods: [/a.v1.Svc/Put] } }
  writer: { scope: any, methods: [/a.v1.Svc/Put, "/a.v1.Svc/*"], on_behalf: { scope: any, methods: ["/a.v1.Svc/*"] } }
  gateway: { delegate: true, methods: [/a.v1.Svc/Put, /a.v1.Svc/Delete, /a.v1.Other/Get, "/a.v1.Wild/*"] }
  customer: { on_behalf: { methods: [/a.v1.Other/Get, "/a.v1.Wild/*"] } }
  authenticated: { methods: [/a.v1.Who/Am, "/h.v1.Health/*"] }
`

// TestPrecomputedMatchesGeneralPath decides every caller x method x delegation with the
// precomputed outcomes and with the general path alone, and requires the same Decision.
func TestPrecomputedMatchesGeneralPath(t *testing.T) {
	p := pkitest.New(t)
	td := spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)
	client := func(req pki.Request) identity.Identity {
		req.Usage = pki.ClientAuth
		id, err := identity.FromCertificate(p.Issue(t, req).Cert, td)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	callers := map[string]identity.Identity{
		"no entry":        client(pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local/intern/ivan"}}),
		"one entry":       client(pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local/staff/sam"}}),
		"two entries":     client(pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local/staff/lead-lea"}}),
		"three entries":   client(pki.Request{CommonName: "robot", SPIFFEIDs: []string{"spiffe://bank.local/staff/lead-rob"}}),
		"CN entry":        client(pki.Request{CommonName: "robot", SPIFFEIDs: []string{"spiffe://bank.local/robot/1"}}),
		"delegating":      client(pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local/service/gateway"}}),
		"customer":        client(pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local/customer/alice"}}),
		"payments":        client(pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local/service/payments"}}),
		"teller":          client(pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local/teller/tina"}}),
		"teller and more": client(pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local/teller/tina/branch"}}),
	}
	methods := []string{
		"/a.v1.Svc/Get", "/a.v1.Svc/Put", "/a.v1.Svc/Delete", "/a.v1.Who/Am", "/h.v1.Health/Check", "/a.v1.Other/Get",
		"/a.v1.Other/Put", "/a.v1.Wild/Any",
		"/bank.accounts.v1.AccountsService/Deposit", "/bank.accounts.v1.AccountsService/WatchLedger",
		"/bank.payments.v1.PaymentsService/CreatePayment",
		"/bank.accounts.v1.AccountsService/GetAccount", "/bank.accounts.v1.AccountsService/Transfer",
		"/bank.accounts.v1.AccountsService/OpenAccount", "/bank.identity.v1.IdentityService/WhoAmI",
		"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/", "", "nonsense",
	}
	delegations := [][]string{
		nil,
		{"spiffe://bank.local/staff/lead-lea"},
		{"spiffe://bank.local/staff/sam"},
		{"spiffe://bank.local/customer/alice"},
		{"spiffe://bank.local/teller/tina"},
		{"spiffe://bank.local/auditor/audrey"},
		{"spiffe://bank.local/guest/g"},
		{"spiffe://bank.local/writer/w"},
		{"spiffe://bank.local/robot/1"},
		{"spiffe://bank.local/service/gateway"},
		{"spiffe://bank.local/service/payments"},
		{"spiffe://bank.local/teller"},
		{"spiffe://bank.local/nobody/x"},
		{"spiffe://bank.local/a", "spiffe://bank.local/b"},
		{"not an id"},
	}
	accounts, err := os.ReadFile("../../services/accounts/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	payments, err := os.ReadFile("../../services/payments/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	policies := []struct {
		name string
		yaml []byte
	}{
		{name: "overlapping entries", yaml: []byte(overlapPolicy)},
		{name: "accounts service", yaml: accounts},
		{name: "payments service", yaml: payments},
	}
	for _, pt := range policies {
		t.Run(pt.name, func(t *testing.T) {
			fast, err := ParsePolicy(pt.name, pt.yaml)
			if err != nil {
				t.Fatal(err)
			}
			if fast.fast == nil {
				t.Fatal("policy has no precomputed outcomes")
			}
			general := *fast
			general.fast = nil
			precomputedHits, subjectHits, delegatedAllowed := 0, 0, 0
			for name, id := range callers {
				for _, m := range methods {
					if _, ok := fast.precomputed(&id, m); ok {
						precomputedHits++
					}
					for _, obo := range delegations {
						if len(obo) == 1 {
							if sid, err := spiffeid.FromString(obo[0]); err == nil {
								if _, ok := fast.precomputedSubject(sid, m); ok {
									subjectHits++
								}
							}
						}
						got, want := fast.Decide(id, m, obo...), general.Decide(id, m, obo...)
						if !sameDecision(got, want) {
							t.Errorf("%s calling %q on behalf of %v:\nprecomputed %+v\ngeneral     %+v", name, m, obo, got, want)
						}
						if got.OnBehalfOf != nil {
							delegatedAllowed++
						}
					}
				}
			}
			if precomputedHits == 0 || subjectHits == 0 {
				t.Errorf("calls on the precomputed path: %d, end users: %d; want some of each", precomputedHits, subjectHits)
			}
			if pt.name != "payments service" && delegatedAllowed == 0 {
				t.Error("no delegated call was allowed: the comparison says nothing about on_behalf")
			}
		})
	}
}

func sameDecision(a, b Decision) bool {
	if a.Allowed != b.Allowed || a.Rule != b.Rule || a.OwnOnly != b.OwnOnly ||
		!slices.Equal(a.Roles, b.Roles) || a.Identity.ID != b.Identity.ID {
		return false
	}
	if (a.OnBehalfOf == nil) != (b.OnBehalfOf == nil) {
		return false
	}
	return a.OnBehalfOf == nil || (a.OnBehalfOf.ID == b.OnBehalfOf.ID && a.OnBehalfOf.Rule == b.OnBehalfOf.Rule &&
		a.OnBehalfOf.OwnOnly == b.OnBehalfOf.OwnOnly && slices.Equal(a.OnBehalfOf.Roles, b.OnBehalfOf.Roles))
}

// TestPrecomputeBound: a policy too large to precompute is decided on the general path.
func TestPrecomputeBound(t *testing.T) {
	p, err := ParsePolicy("p.yaml", []byte(overlapPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; len(p.identities)*len(p.grants) <= maxPrecomputed; i++ {
		p.identities = append(p.identities, p.identities[0])
	}
	p.fast = nil
	p.precompute()
	if p.fast != nil {
		t.Fatalf("precomputed %d x %d outcomes, bound is %d", len(p.identities)+1, len(p.grants), maxPrecomputed)
	}
	id := identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local/staff/sam")}
	if d := p.Decide(id, "/a.v1.Svc/Get"); !d.Allowed {
		t.Fatalf("general path denied: %s", d.Rule)
	}
}

// TestDecideAllocations: the precomputed path allocates nothing for a call without
// delegation, and only the end user's Subject and the joined rule with it.
func TestDecideAllocations(t *testing.T) {
	data, err := os.ReadFile("../../services/accounts/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy("accounts", data)
	if err != nil {
		t.Fatal(err)
	}
	alice := identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local/customer/alice")}
	payments := identity.Identity{ID: spiffeid.RequireFromString("spiffe://bank.local/service/payments")}
	const get, transfer = "/bank.accounts.v1.AccountsService/GetAccount", "/bank.accounts.v1.AccountsService/Transfer"
	if d := p.Decide(payments, transfer, alice.ID.String()); !d.Allowed {
		t.Fatalf("payments for alice denied: %s", d.Rule)
	}
	if n := testing.AllocsPerRun(100, func() { p.Decide(alice, get) }); n != 0 {
		t.Errorf("Decide without delegation: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { p.Decide(payments, transfer, "spiffe://bank.local/customer/alice") }); n > 2 {
		t.Errorf("Decide on behalf of an end user: %v allocations, want at most 2 (the Subject and the rule)", n)
	}
}
