package paymentstest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/payments"
	"mtlsbank/internal/pki"
)

// fakeAccounts is the accounts service as payments sees it: Transfer, idempotent on
// its key (a refusal stays refused), with balances, voids (TransferRequest.void), and
// a switch that makes it unreachable. It records every transfer it carried out, so
// that a test can say whether money moved.
type fakeAccounts struct {
	accountsv1.AccountsServiceClient // every other method panics: payments calls none

	mu       sync.Mutex
	down     bool
	balances map[string]int64
	done     map[string]*accountsv1.Transaction // by idempotency key
	refused  map[string]error                   // by idempotency key
	moved    []string                           // keys, in the order they moved money
	reached  map[string]int                     // calls that reached it up, by key
	calls    int
	voids    int
	// voidErr, if set, is the answer to every void (a policy that refuses it).
	voidErr error
	// ignoreVoid makes a void an ordinary transfer, as a server that predates the
	// field does.
	ignoreVoid bool
}

func newFakeAccounts(balances map[string]int64) *fakeAccounts {
	return &fakeAccounts{balances: balances, done: make(map[string]*accountsv1.Transaction), refused: make(map[string]error),
		reached: make(map[string]int)}
}

func (f *fakeAccounts) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// voidedErr is the accounts service's refusal of a voided key.
func voidedErr() error {
	st, err := status.New(codes.FailedPrecondition, "idempotency_key: transfer voided").
		WithDetails(&errdetails.ErrorInfo{Reason: "TRANSFER_VOIDED", Domain: "bank.local"})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func (f *fakeAccounts) Transfer(_ context.Context, req *accountsv1.TransferRequest, _ ...grpc.CallOption) (*accountsv1.TransferResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	key := req.GetIdempotencyKey()
	f.reached[key]++
	void := req.GetVoid() && !f.ignoreVoid
	if void {
		f.voids++
		if f.voidErr != nil {
			return nil, f.voidErr
		}
	}
	if t, ok := f.done[key]; ok {
		return &accountsv1.TransferResponse{Transaction: t, Replayed: true}, nil
	}
	if err, ok := f.refused[key]; ok {
		return nil, err
	}
	if void {
		f.refused[key] = voidedErr()
		return nil, f.refused[key]
	}
	amount := req.GetAmount().GetMinorUnits()
	if f.balances[req.GetFromAccountId()] < amount {
		f.refused[key] = status.Error(codes.FailedPrecondition, "insufficient funds")
		return nil, f.refused[key]
	}
	f.balances[req.GetFromAccountId()] -= amount
	f.balances[req.GetToAccountId()] += amount
	t := &accountsv1.Transaction{Id: fmt.Sprintf("txn_%d", len(f.moved)+1)}
	f.done[key] = t
	f.moved = append(f.moved, key)
	return &accountsv1.TransferResponse{Transaction: t}, nil
}

// reachedFor is how many calls for the payment's transfer reached accounts while
// it was up.
func (f *fakeAccounts) reachedFor(paymentID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reached["payment:"+paymentID]
}

// movedFor reports whether the transfer of the payment moved money.
func (f *fakeAccounts) movedFor(paymentID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.done["payment:"+paymentID]
	return ok
}

// Alice is the customer whose orders NewPayment makes in the stores' own tests.
const Alice = "spiffe://bank.local/customer/alice"

// The customers of the suite.
const (
	alice = Alice
	bob   = "spiffe://bank.local/customer/bob"
)

// Well-formed account ids of the ledger's alphabet.
const (
	accAlice = "acc_0000000000000000000000000a"
	accBob   = "acc_0000000000000000000000000b"
)

// caller is a context as the authorization interceptor hands it to a handler: the
// caller's verified certificate, allowed, limited to its own accounts or not.
func caller(tb testing.TB, leaf *pki.Leaf, ownOnly bool) context.Context {
	tb.Helper()
	id, err := spiffeid.FromURI(leaf.Cert.URIs[0])
	if err != nil {
		tb.Fatal(err)
	}
	return authz.NewContext(context.Background(), authz.Decision{
		Allowed:  true,
		Identity: identity.Identity{ID: id, Serial: leaf.Cert.SerialNumber, Leaf: leaf.Cert, Chain: leaf.Chain},
		OwnOnly:  ownOnly,
	})
}

// newService is the payments service on a store on a new database.
func (su suite) newService(tb testing.TB, acc *fakeAccounts, opts ...payments.Option) (*payments.Service, payments.Store) {
	tb.Helper()
	store := su.stores.New(tb)
	return serviceOn(store, acc, opts...), store
}

// serviceOn is the payments service on store, as one payments process.
func serviceOn(store payments.Store, acc *fakeAccounts, opts ...payments.Option) *payments.Service {
	opts = append([]payments.Option{payments.WithCallTimeout(2 * time.Second)}, opts...)
	return payments.NewService(store, acc, opts...)
}

// crlChecker is a payments.RevocationChecker over real CRLs: each parsed with
// crypto/x509 and kept only if a CA of the current bundle signed it, as the
// service's TLS source keeps them. Set replaces bundle and CRLs together, as a
// reload does.
type crlChecker struct {
	mu   sync.Mutex
	crls []*x509.RevocationList
}

func (c *crlChecker) set(tb testing.TB, cas []*x509.Certificate, pemCRLs ...[]byte) {
	tb.Helper()
	var crls []*x509.RevocationList
	for _, data := range pemCRLs {
		for rest := data; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			rl, err := x509.ParseRevocationList(block.Bytes)
			if err != nil {
				tb.Fatalf("parse CRL: %v", err)
			}
			signed := false
			for _, ca := range cas {
				if bytes.Equal(ca.RawSubject, rl.RawIssuer) && rl.CheckSignatureFrom(ca) == nil {
					signed = true
				}
			}
			if !signed {
				tb.Fatalf("CRL of %s not signed by a CA of the bundle", rl.Issuer)
			}
			crls = append(crls, rl)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.crls = crls
}

func (c *crlChecker) RevokedSerial(rawIssuer []byte, serial *big.Int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rl := range c.crls {
		if !bytes.Equal(rl.RawIssuer, rawIssuer) {
			continue
		}
		for _, e := range rl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(serial) == 0 {
				return true
			}
		}
	}
	return false
}

// crlOf returns a PEM CRL signed by ca listing the certificates.
func crlOf(tb testing.TB, ca *pki.CA, number int64, revoked ...*x509.Certificate) []byte {
	tb.Helper()
	serials := make([]*big.Int, len(revoked))
	for i, c := range revoked {
		serials[i] = c.SerialNumber
	}
	now := time.Now()
	der, err := ca.CreateCRL(serials, big.NewInt(number), now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	return pki.EncodeCRLPEM(der)
}
