package validation_test

import (
	"context"
	"net"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/validation"
)

// BenchmarkCheck is the validator's own cost per request, as the interceptor pays it.
func BenchmarkCheck(b *testing.B) {
	v := newValidator(b)
	for _, bm := range []struct {
		name string
		msg  proto.Message
	}{
		{"WhoAmI", &identityv1.WhoAmIRequest{}},
		{"GetAccount", &accountsv1.GetAccountRequest{Id: accountA}},
		{"Transfer", &accountsv1.TransferRequest{FromAccountId: accountA, ToAccountId: accountB, Amount: eur(2500), IdempotencyKey: "rent-2026-12", Reference: "December rent"}},
		{"CreatePayment", &paymentsv1.CreatePaymentRequest{FromAccountId: accountA, ToAccountId: accountB, Amount: eur(2500), IdempotencyKey: "rent-2026-12", Memo: "December rent"}},
		{"GetAccount/refused", &accountsv1.GetAccountRequest{Id: "acc_x"}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_ = v.Check(ctx, bm.msg)
			}
		})
	}
}

// BenchmarkCall is a whole unary call over mutual TLS (bufconn, the bank's credentials),
// to a handler that answers at once, with and without the validation interceptor: the
// difference is what validation adds to a call. One caller, calls back to back.
func BenchmarkCall(b *testing.B) {
	for _, withValidation := range []bool{false, true} {
		name := "bare"
		if withValidation {
			name = "validated"
		}
		client := benchServer(b, withValidation)
		ctx := context.Background()
		b.Run("WhoAmI/"+name, func(b *testing.B) {
			who := identityv1.NewIdentityServiceClient(client)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := who.WhoAmI(ctx, &identityv1.WhoAmIRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("GetAccount/"+name, func(b *testing.B) {
			acc := accountsv1.NewAccountsServiceClient(client)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := acc.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: accountA}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchServer serves canned WhoAmI and GetAccount answers over mutual TLS, with the
// validation interceptor or with no interceptor at all, and returns a client of it.
func benchServer(b *testing.B, withValidation bool) *grpc.ClientConn {
	b.Helper()
	td := spiffeid.RequireTrustDomainFromString("bank.local")
	p := pkitest.New(b)
	srvSrc, err := tlsconfig.NewSource(td, p.Server(b, "spiffe://bank.local/service/accounts").TLSCertificate(), p.Bundle)
	if err != nil {
		b.Fatal(err)
	}
	opts := []grpc.ServerOption{grpc.Creds(tlsconfig.ServerCredentials(srvSrc))}
	if withValidation {
		v, err := validation.New(nil)
		if err != nil {
			b.Fatal(err)
		}
		opts = append(opts, grpc.ChainUnaryInterceptor(v.UnaryServerInterceptor()))
	}
	srv := grpc.NewServer(opts...)
	identityv1.RegisterIdentityServiceServer(srv, cannedServer{})
	accountsv1.RegisterAccountsServiceServer(srv, cannedServer{})
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)

	cliSrc, err := tlsconfig.NewSource(td, p.Client(b, "spiffe://bank.local/customer/alice").TLSCertificate(), p.Bundle)
	if err != nil {
		b.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithTransportCredentials(tlsconfig.ClientCredentials(cliSrc, "bufnet")),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	return cc
}

type cannedServer struct {
	identityv1.UnimplementedIdentityServiceServer
	accountsv1.UnimplementedAccountsServiceServer
}

func (cannedServer) WhoAmI(context.Context, *identityv1.WhoAmIRequest) (*identityv1.WhoAmIResponse, error) {
	return &identityv1.WhoAmIResponse{SpiffeId: "spiffe://bank.local/customer/alice", Roles: []string{"customer"}}, nil
}

func (cannedServer) GetAccount(_ context.Context, req *accountsv1.GetAccountRequest) (*accountsv1.GetAccountResponse, error) {
	return &accountsv1.GetAccountResponse{Account: &accountsv1.Account{Id: req.GetId(), Owner: "spiffe://bank.local/customer/alice", Currency: "EUR", Balance: eur(2500)}}, nil
}
