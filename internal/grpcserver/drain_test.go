package grpcserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/telemetry"
)

// shortLivedCreds are a grpc-go client's credentials whose GetClientCertificate presents
// a freshly issued certificate for id, valid for ttl, on every handshake: a client that
// rotates short-lived certificates (as a SPIFFE agent's would).
func (h *harness) shortLivedCreds(tb testing.TB, id string, ttl time.Duration, issued *atomic.Int64) credentials.TransportCredentials {
	tb.Helper()
	roots := x509.NewCertPool()
	for _, c := range h.pki.Bundle {
		roots.AddCert(c)
	}
	return credentials.NewTLS(&tls.Config{
		RootCAs:    roots,
		ServerName: h.serverName,
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			from := time.Now().Truncate(time.Second)
			leaf := h.pki.Client(tb, id, pki.WithValidity(from, from.Add(ttl)))
			issued.Add(1)
			cert := leaf.TLSCertificate()
			return &cert, nil
		},
	})
}

// TestExpiryDrainsWithoutFailedCalls: clients whose certificates live 3 seconds call
// continuously from several goroutines across several rotations. Before each
// certificate's NotAfter the server tells the connection to go away (a graceful GOAWAY
// injected between two HTTP/2 frames); the client reconnects with its next certificate
// and not one call fails. A client that does not rotate is refused after its NotAfter.
func TestExpiryDrainsWithoutFailedCalls(t *testing.T) {
	const (
		ttl       = 3 * time.Second
		rotations = 4
		callers   = 4
	)
	m := telemetry.NewMetrics()
	var serials sync.Map
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if id, err := identity.FromPeer(ctx); err == nil {
			serials.Store(id.SerialHex, true)
		}
		return handler(ctx, req)
	}
	h := start(t, "tcp", grpcserver.WithMetrics(m), grpcserver.WithExpiryDrain(time.Second),
		grpcserver.WithServerOptions(grpc.ChainUnaryInterceptor(record)))
	var issued atomic.Int64
	cc := h.dial(t, h.shortLivedCreds(t, "spiffe://bank.local/customer/alice", ttl, &issued))

	distinct := func() int {
		n := 0
		serials.Range(func(any, any) bool { n++; return true })
		return n
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for ctx.Err() == nil && distinct() < rotations+1 {
				callCtx, done := context.WithTimeout(ctx, 10*time.Second)
				_, err := echo(callCtx, cc, "rotating")
				done()
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the server saw %d distinct serials in 60s, want %d", distinct(), rotations+1)
	}
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d calls failed across rotations, first: %v", n, calls.Load(), firstErr.Load())
	}
	drains := counterValue(t, m, "bank_connections_drained_total", nil)
	t.Logf("%d calls, %d certificates issued, %d serials seen, %v drains", calls.Load(), issued.Load(), distinct(), drains)
	if drains < rotations {
		t.Errorf("bank_connections_drained_total = %v, want at least %d", drains, rotations)
	}

	// A client that keeps its certificate past the NotAfter is refused, as before.
	static := h.pki.Client(t, "spiffe://bank.local/customer/bob", pki.WithValidity(time.Now().Truncate(time.Second), time.Now().Truncate(time.Second).Add(ttl)))
	bob := h.connect(t, static)
	if _, err := echo(t.Context(), bob, "before"); err != nil {
		t.Fatalf("bob before his NotAfter: %v", err)
	}
	waitFor(t, func() bool { return time.Now().After(static.Cert.NotAfter.Add(time.Second)) })
	if _, err := echo(t.Context(), bob, "after"); status.Code(err) != codes.Unavailable && status.Code(err) != codes.Unauthenticated {
		t.Fatalf("bob after his NotAfter: %v, want refused", err)
	}
}
