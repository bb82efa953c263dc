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
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
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

// TestOwnExpiryDrainsWithoutFailedCalls: the server's own certificate lives 3 seconds and
// is rotated at half its life, as a SPIFFE agent does; its clients re-check the server's
// chain on every call (tlsconfig.ServerCheck). Before the certificate a connection was
// opened with expires, the server tells the connection to go away, the client reconnects
// to the rotated certificate, and not one call fails.
func TestOwnExpiryDrainsWithoutFailedCalls(t *testing.T) {
	const (
		ttl       = 3 * time.Second
		rotations = 3
		callers   = 4
	)
	m := telemetry.NewMetrics()
	h := start(t, "tcp", grpcserver.WithMetrics(m), grpcserver.WithExpiryDrain(time.Second))
	issue := func() {
		from := time.Now().Truncate(time.Second)
		leaf := h.pki.Server(t, serverID, pki.WithValidity(from, from.Add(ttl)))
		if err := h.src.SetCertificate(leaf.TLSCertificate()); err != nil {
			t.Error(err)
		}
	}
	issue()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// The agent: a new certificate once the current one has lived half its life.
	var rotator sync.WaitGroup
	rotator.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				leaf := h.src.Certificate().Leaf
				if time.Until(leaf.NotAfter) < leaf.NotAfter.Sub(leaf.NotBefore)/2 {
					issue()
				}
			}
		}
	})
	defer func() { cancel(); rotator.Wait() }()

	clientSrc, err := tlsconfig.NewSource(td, h.pki.Client(t, "spiffe://bank.local/customer/alice").TLSCertificate(), h.pki.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	cc := dial(t, h.addr, tlsconfig.ClientCredentials(clientSrc, h.serverName), grpc.WithPerRPCCredentials(tlsconfig.ServerCheck(clientSrc)))
	var serials sync.Map
	distinct := func() int {
		n := 0
		serials.Range(func(any, any) bool { n++; return true })
		return n
	}
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for ctx.Err() == nil && distinct() < rotations+1 && failed.Load() == 0 {
				var p peer.Peer
				callCtx, done := context.WithTimeout(ctx, 10*time.Second)
				_, err := echo(callCtx, cc, "rotating server", grpc.Peer(&p))
				done()
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
					serials.Store(ti.State.PeerCertificates[0].SerialNumber.String(), true)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d calls failed across server rotations, first: %v", n, calls.Load(), firstErr.Load())
	}
	if distinct() < rotations+1 {
		t.Fatalf("the client saw %d server certificates in 60s, want %d", distinct(), rotations+1)
	}
	if drains := counterValue(t, m, "bank_connections_drained_total", nil); drains < rotations {
		t.Errorf("bank_connections_drained_total = %v, want at least %d", drains, rotations)
	}
	if len(h.logs.find(map[string]any{"msg": "connection drained ahead of certificate expiry", "expiring": "server"})) == 0 {
		t.Error("the drain does not say it was for the server's certificate")
	}
}
