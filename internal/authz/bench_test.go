package authz_test

import (
	"context"
	"net"
	"os"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
)

// accountsPolicyFile is the accounts service's embedded default policy: the realistic
// case (four identity entries, five roles, service wildcards).
const accountsPolicyFile = "../../services/accounts/policy.yaml"

func loadAccountsPolicy(tb testing.TB) *authz.Policy {
	tb.Helper()
	data, err := os.ReadFile(accountsPolicyFile)
	if err != nil {
		tb.Fatalf("read %s: %v", accountsPolicyFile, err)
	}
	p, err := authz.ParsePolicy(accountsPolicyFile, data)
	if err != nil {
		tb.Fatalf("ParsePolicy: %v", err)
	}
	return p
}

// BenchmarkDecide measures Policy.Decide, the decision every RPC pays, on the accounts
// service's real policy: a customer reading an account, a teller, the payments service
// delegating a transfer, a denial, and the matcher-heavy test policy. The goal is <= 200
// ns and 0 allocations for the allowed calls; a denial may allocate its audit reason.
func BenchmarkDecide(b *testing.B) {
	f := newFixture(b)
	p := f.pki
	accounts := loadAccountsPolicy(b)
	alice := mustIdentity(b, p.Client(b, "spiffe://bank.local/customer/alice"))
	teller := mustIdentity(b, p.Client(b, "spiffe://bank.local/teller/tina"))
	payments := mustIdentity(b, p.Server(b, "spiffe://bank.local/service/payments"))
	cases := []struct {
		name       string
		policy     *authz.Policy
		id         identity.Identity
		method     string
		onBehalfOf []string
		allowed    bool
	}{
		{name: "customer GetAccount", policy: accounts, id: alice, method: mGet, allowed: true},
		{name: "customer WhoAmI", policy: accounts, id: alice, method: mWhoAmI, allowed: true},
		{name: "teller GetAccount", policy: accounts, id: teller, method: mGet, allowed: true},
		{name: "payments Transfer on behalf", policy: accounts, id: payments, method: mTransfer, onBehalfOf: []string{alice.ID.String()}, allowed: true},
		{name: "customer OpenAccount denied", policy: accounts, id: alice, method: mOpen, allowed: false},
		{name: "every matcher kind", policy: f.policy, id: alice, method: mGet, allowed: true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if d := c.policy.Decide(c.id, c.method, c.onBehalfOf...); d.Allowed != c.allowed {
				b.Fatalf("Decide allowed = %v (%s), want %v", d.Allowed, d.Rule, c.allowed)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.policy.Decide(c.id, c.method, c.onBehalfOf...)
			}
		})
	}
}

// BenchmarkAuthorize measures the whole auth func an RPC runs: identity from the peer
// (derived at handshake), the per-call certificate check hook, the decision and the
// audit record (to a discarding logger), and the context it returns.
func BenchmarkAuthorize(b *testing.B) {
	f := newFixture(b)
	leaf := f.pki.Client(b, "spiffe://bank.local/customer/alice")
	id := mustIdentity(b, leaf)
	id.Chain = leaf.Chain
	az := authz.NewAuthorizer(loadAccountsPolicy(b), nil)
	ctx := peer.NewContext(context.Background(), &peer.Peer{
		Addr:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
		AuthInfo: identity.AuthInfo{Identity: id},
	})
	ctx = grpc.NewContextWithServerTransportStream(ctx, &methodStream{method: mGet})
	ctx = metadata.NewIncomingContext(ctx, metadata.MD{})
	if _, err := az.Authorize(ctx); err != nil {
		b.Fatalf("Authorize: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := az.Authorize(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// methodStream is the smallest grpc.ServerTransportStream: it names the method.
type methodStream struct{ method string }

func (s *methodStream) Method() string               { return s.method }
func (s *methodStream) SetHeader(metadata.MD) error  { return nil }
func (s *methodStream) SendHeader(metadata.MD) error { return nil }
func (s *methodStream) SetTrailer(metadata.MD) error { return nil }
