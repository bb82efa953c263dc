package grpcserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
)

// CheckCaller's documented contract: "an Unauthenticated status ... once [the chain] is
// not [good], or when ctx is not a call of a Server". Given a context that carries the
// server's checker but whose peer has no usable identity (no peer, or a peer whose
// AuthInfo is not the bank's: a handler that re-parents its context, an in-process
// call), it must answer Unauthenticated, not panic: identity.FromPeer now returns a nil
// *Identity with its error, which the log line then dereferences.
func TestCheckCallerWithoutIdentity(t *testing.T) {
	p := pkitest.New(t)
	src, err := tlsconfig.NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), p.Server(t, "spiffe://bank.local/service/accounts").TLSCertificate(), p.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	tracker := newConnTracker(src, slog.New(slog.DiscardHandler), nil, 0)
	base := context.WithValue(context.Background(), checkerKey{}, tracker)
	for name, ctx := range map[string]context.Context{
		"no peer":          base,
		"peer without TLS": peer.NewContext(base, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}),
		"TLS without chain": peer.NewContext(base, &peer.Peer{
			Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, AuthInfo: credentials.TLSInfo{},
		}),
	} {
		t.Run(name, func(t *testing.T) {
			var got error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("CheckCaller panicked: %v", r)
					}
				}()
				got = CheckCaller(ctx)
			}()
			if status.Code(got) != codes.Unauthenticated && !t.Failed() {
				t.Errorf("CheckCaller = %v, want Unauthenticated", got)
			}
		})
	}
}

// TestCloseFailedReportsOnce: two checks that find the same connection failed (a
// reload's recheck and the periodic one, at the same moment) close it once and write
// one record of it, not two.
func TestCloseFailedReportsOnce(t *testing.T) {
	p := pkitest.New(t)
	src, err := tlsconfig.NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), p.Server(t, "spiffe://bank.local/service/accounts").TLSCertificate(), p.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	rec := &records{level: slog.LevelDebug}
	tracker := newConnTracker(src, slog.New(rec), nil, -1)
	server, client := net.Pipe()
	defer client.Close()
	sc := tracker.add(server, &identity.AuthInfo{}, nil)
	revoked := errors.New("revoked")
	first, second := tracker.closeFailed(sc, revoked), tracker.closeFailed(sc, revoked)
	if !first || second {
		t.Errorf("closeFailed reported closing %v then %v, want true then false", first, second)
	}
	if len(rec.got) != 1 {
		t.Errorf("%d records of the connection closed, want 1: %v", len(rec.got), rec.got)
	}
	if n := len(tracker.snapshot()); n != 0 {
		t.Errorf("%d connections still tracked, want 0", n)
	}
}
