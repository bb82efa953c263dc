package whoami_test

import (
	"context"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/whoami"
)

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// TestWhoAmI: the answer is the identity derived from the certificate (the subject made
// once at derivation, or formatted when an identity was built without it) and the roles
// of the decision; without a decision the call fails closed.
func TestWhoAmI(t *testing.T) {
	p := pkitest.New(t)
	leaf := p.Client(t, "spiffe://bank.local/customer/alice")
	derived, err := identity.FromCertificate(leaf.Cert, td)
	if err != nil {
		t.Fatal(err)
	}
	if derived.SubjectText != leaf.Cert.Subject.String() || derived.SubjectText == "" {
		t.Fatalf("SubjectText %q, want %q", derived.SubjectText, leaf.Cert.Subject.String())
	}
	byHand := derived
	byHand.SubjectText = ""
	for name, id := range map[string]identity.Identity{"derived": derived, "built by hand": byHand} {
		t.Run(name, func(t *testing.T) {
			d := authz.Decision{Allowed: true, Identity: id, Roles: []string{"customer"}}
			resp, err := whoami.New().WhoAmI(authz.NewContext(context.Background(), d), &identityv1.WhoAmIRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetSubject() != leaf.Cert.Subject.String() || resp.GetSpiffeId() != "spiffe://bank.local/customer/alice" ||
				resp.GetSerial() != id.SerialHex || len(resp.GetRoles()) != 1 || resp.GetRoles()[0] != "customer" ||
				resp.GetFingerprintSha256() != id.FingerprintHex() || !resp.GetNotAfter().AsTime().Equal(leaf.Cert.NotAfter) {
				t.Errorf("WhoAmI = %v", resp)
			}
		})
	}
	if _, err := whoami.New().WhoAmI(context.Background(), &identityv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without a decision: %v, want Unauthenticated", err)
	}
}

// BenchmarkWhoAmI measures the handler: the answer built from the decision.
func BenchmarkWhoAmI(b *testing.B) {
	p := pkitest.New(b)
	id, err := identity.FromCertificate(p.Client(b, "spiffe://bank.local/customer/alice").Cert, td)
	if err != nil {
		b.Fatal(err)
	}
	ctx := authz.NewContext(context.Background(), authz.Decision{Allowed: true, Identity: id, Roles: []string{"customer"}})
	svc := whoami.New()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.WhoAmI(ctx, &identityv1.WhoAmIRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
