package paymentstest

import (
	"context"
	"crypto/x509"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
)

// testPendingOrderOfRevokedCreator: alice orders a payment while accounts is down,
// so it stays PENDING; then the service's trust material changes and accounts comes
// back. A revocation of the certificate she ordered with fails the order, whether
// recovery or her own retry drives it, and no money moves. Nothing else does: not a
// CA rotation, not her CA leaving the bundle, not the revocation of another
// certificate of hers, not the revocation of her serial by another CA.
func (su suite) testPendingOrderOfRevokedCreator(t *testing.T) {
	p := pkitest.New(t)
	other, err := p.Root.NewIntermediate("pkitest Second Intermediate CA", pki.WithTTL(pkitest.CATTL))
	if err != nil {
		t.Fatal(err)
	}
	newRoot, err := pki.NewRootCA("pkitest Next Root CA", pki.WithTTL(pkitest.CATTL))
	if err != nil {
		t.Fatal(err)
	}
	newInter, err := newRoot.NewIntermediate("pkitest Next Intermediate CA", pki.WithTTL(pkitest.CATTL))
	if err != nil {
		t.Fatal(err)
	}
	bundle := []*x509.Certificate{p.Root.Cert, p.Intermediate.Cert, other.Cert}

	type reload struct {
		cas  []*x509.Certificate
		crls [][]byte
	}
	tests := []struct {
		name        string
		reload      func(t *testing.T, alice, aliceNew *pki.Leaf) reload
		wantRevoked bool
	}{
		{
			name: "her certificate is revoked",
			reload: func(t *testing.T, alice, _ *pki.Leaf) reload {
				return reload{bundle, [][]byte{crlOf(t, p.Intermediate, 2, alice.Cert), crlOf(t, other, 2)}}
			},
			wantRevoked: true,
		},
		{
			name: "her certificate is revoked among others in a CRL bundle",
			reload: func(t *testing.T, alice, _ *pki.Leaf) reload {
				bobLeaf := p.Client(t, bob)
				return reload{bundle, [][]byte{append(crlOf(t, other, 3), crlOf(t, p.Intermediate, 3, bobLeaf.Cert, alice.Cert)...)}}
			},
			wantRevoked: true,
		},
		{
			name: "her intermediate is revoked by the root",
			reload: func(t *testing.T, _, _ *pki.Leaf) reload {
				return reload{bundle, [][]byte{crlOf(t, p.Root, 2, p.Intermediate.Cert), crlOf(t, p.Intermediate, 2), crlOf(t, other, 2)}}
			},
			wantRevoked: true,
		},
		{
			name: "another intermediate is revoked by the root",
			reload: func(t *testing.T, _, _ *pki.Leaf) reload {
				return reload{bundle, [][]byte{crlOf(t, p.Root, 2, other.Cert), crlOf(t, p.Intermediate, 2)}}
			},
		},
		{
			name: "CA rotation: a new root and intermediate join the bundle",
			reload: func(t *testing.T, _, _ *pki.Leaf) reload {
				cas := append(bundle[:len(bundle):len(bundle)], newRoot.Cert, newInter.Cert)
				return reload{cas, [][]byte{crlOf(t, p.Intermediate, 2), crlOf(t, newInter, 1)}}
			},
		},
		{
			name: "her CA left the bundle",
			reload: func(t *testing.T, _, _ *pki.Leaf) reload {
				return reload{[]*x509.Certificate{p.Root.Cert, other.Cert, newRoot.Cert, newInter.Cert}, [][]byte{crlOf(t, other, 2)}}
			},
		},
		{
			name: "another certificate of hers is revoked",
			reload: func(t *testing.T, _, aliceNew *pki.Leaf) reload {
				return reload{bundle, [][]byte{crlOf(t, p.Intermediate, 2, aliceNew.Cert)}}
			},
		},
		{
			name: "her serial is revoked by another CA",
			reload: func(t *testing.T, alice, _ *pki.Leaf) reload {
				twin, err := other.Issue(pki.Request{CommonName: "twin", SPIFFEIDs: []string{bob}, Usage: pki.ClientAuth},
					pki.WithSerial(alice.Cert.SerialNumber), pki.WithTTL(pkitest.LeafTTL))
				if err != nil {
					t.Fatal(err)
				}
				return reload{bundle, [][]byte{crlOf(t, p.Intermediate, 2), crlOf(t, other, 2, twin.Cert)}}
			},
		},
	}
	for _, tt := range tests {
		for _, driver := range []string{"recovery", "her retry"} {
			t.Run(tt.name+"/"+driver, func(t *testing.T) {
				alice1 := p.Client(t, alice)
				alice2 := p.Client(t, alice) // the certificate she rotated to
				acc := newFakeAccounts(map[string]int64{accAlice: 100_00})
				acc.setDown(true)
				checker := &crlChecker{}
				checker.set(t, bundle, crlOf(t, p.Intermediate, 1), crlOf(t, other, 1))
				svc, store := su.newService(t, acc, payments.WithRevocationChecker(checker))

				req := &paymentsv1.CreatePaymentRequest{
					FromAccountId: accAlice, ToAccountId: accBob, IdempotencyKey: "rent",
					Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 10_00},
				}
				_, err := svc.CreatePayment(caller(t, alice1, true), req)
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("CreatePayment while accounts is down: %v, want Unavailable", err)
				}
				pending := ListIDs(t, store, payments.Query{Status: payments.StatusPending, Limit: 10})
				if len(pending) != 1 {
					t.Fatalf("pending = %v, want the one order", pending)
				}

				r := tt.reload(t, alice1, alice2)
				checker.set(t, r.cas, r.crls...)
				acc.setDown(false)
				switch driver {
				case "recovery":
					if _, err := svc.Recover(context.Background()); err != nil {
						t.Fatalf("Recover: %v", err)
					}
				case "her retry":
					_, err := svc.CreatePayment(caller(t, alice2, true), req)
					if wantCode := map[bool]codes.Code{true: codes.PermissionDenied, false: codes.OK}[tt.wantRevoked]; status.Code(err) != wantCode {
						t.Fatalf("retry: %v, want %s", err, wantCode)
					}
				}
				got, err := store.Get(context.Background(), pending[0])
				if err != nil {
					t.Fatal(err)
				}
				if tt.wantRevoked {
					if got.Status != payments.StatusFailed || got.FailureReason != payments.ReasonCreatorRevoked || got.FailureCode != "PERMISSION_DENIED" {
						t.Fatalf("order of a revoked creator: %s %s %q, want FAILED PERMISSION_DENIED %q",
							got.Status, got.FailureCode, got.FailureReason, payments.ReasonCreatorRevoked)
					}
					if acc.movedFor(got.ID) {
						t.Fatal("the transfer of a revoked creator's order moved money")
					}
					return
				}
				if got.Status != payments.StatusCompleted || !acc.movedFor(got.ID) {
					t.Fatalf("order: %s (%s), moved %v; want COMPLETED: only a revocation of its certificate fails it",
						got.Status, got.FailureReason, acc.movedFor(got.ID))
				}
			})
		}
	}
}

// testCreatorCertificateIsRecorded: the order keeps the serial and issuer of the
// certificate it was made with, as the RevocationChecker needs them.
func (su suite) testCreatorCertificateIsRecorded(t *testing.T) {
	p := pkitest.New(t)
	leaf := p.Client(t, alice)
	acc := newFakeAccounts(map[string]int64{accAlice: 100_00})
	svc, store := su.newService(t, acc)
	resp, err := svc.CreatePayment(caller(t, leaf, true), &paymentsv1.CreatePaymentRequest{
		FromAccountId: accAlice, ToAccountId: accBob, IdempotencyKey: "k",
		Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1_00},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(context.Background(), resp.GetPayment().GetId())
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatorSerial != leaf.Cert.SerialNumber.Text(16) || string(got.CreatorIssuer) != string(leaf.Cert.RawIssuer) {
		t.Fatalf("recorded serial %s issuer %x, want %s %x", got.CreatorSerial, got.CreatorIssuer,
			leaf.Cert.SerialNumber.Text(16), leaf.Cert.RawIssuer)
	}
	inter := p.Intermediate.Cert
	if len(got.CreatorCAs) != 1 || got.CreatorCAs[0].Serial != inter.SerialNumber.Text(16) ||
		string(got.CreatorCAs[0].Issuer) != string(inter.RawIssuer) {
		t.Fatalf("recorded CAs %+v, want the intermediate %s issued by %x", got.CreatorCAs, inter.SerialNumber.Text(16), inter.RawIssuer)
	}
}
