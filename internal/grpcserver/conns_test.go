package grpcserver_test

import (
	"context"
	"io"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

var holdDesc = &grpc.StreamDesc{StreamName: "Hold", ServerStreams: true}

// hold opens a Hold stream on cc and reads its first message.
func hold(tb testing.TB, ctx context.Context, cc *grpc.ClientConn) grpc.ClientStream {
	tb.Helper()
	s, err := cc.NewStream(ctx, holdDesc, "/test.v1.TestService/Hold")
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.SendMsg(wrapperspb.String("hold")); err != nil {
		tb.Fatal(err)
	}
	if err := s.CloseSend(); err != nil {
		tb.Fatal(err)
	}
	if err := s.RecvMsg(new(wrapperspb.StringValue)); err != nil {
		tb.Fatalf("first message of Hold: %v", err)
	}
	return s
}

// connsOf returns the remote addresses of the server's connections from id.
func connsOf(s *grpcserver.Server, id string) []string {
	var out []string
	for _, c := range s.Connections() {
		if c.ID == id {
			out = append(out, c.Remote.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestRevokedPeerLosesOpenConnections: once alice is revoked, a recheck of the open
// connections (what the service runs after every reload and every reload interval)
// closes both of hers, the one with an open stream and the idle one: the stream ends,
// the idle connection leaves READY. Bob's connection is the same one before and after.
func TestRevokedPeerLosesOpenConnections(t *testing.T) {
	m := telemetry.NewMetrics()
	h := start(t, "tcp", grpcserver.WithMetrics(m))
	const aliceID, bobID = "spiffe://bank.local/customer/alice", "spiffe://bank.local/customer/bob"
	alice := h.pki.Client(t, aliceID)
	streamCC, idleCC, bobCC := h.connect(t, alice), h.connect(t, alice), h.connect(t, h.pki.Client(t, bobID))
	ctx := t.Context()
	stream := hold(t, ctx, streamCC)
	for _, cc := range []*grpc.ClientConn{idleCC, bobCC} {
		if _, err := echo(ctx, cc, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(connsOf(h.srv, aliceID)); n != 2 {
		t.Fatalf("alice has %d connections, want 2", n)
	}
	bobBefore := connsOf(h.srv, bobID)
	if len(bobBefore) != 1 {
		t.Fatalf("bob has connections %v, want 1", bobBefore)
	}
	if n := h.srv.RecheckConnections(); n != 0 {
		t.Fatalf("recheck before any revocation closed %d connections", n)
	}

	crl, err := tlsconfig.ParseCRL(h.pki.CRL(t, alice.Cert), h.src.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	h.src.SetCRL(crl)
	if n := h.srv.RecheckConnections(); n != 2 {
		t.Fatalf("recheck closed %d connections, want alice's 2", n)
	}
	if err := stream.RecvMsg(new(wrapperspb.StringValue)); err == io.EOF || status.Code(err) != codes.Unavailable {
		t.Fatalf("alice's stream after the recheck: %v, want Unavailable", err)
	}
	waitFor(t, func() bool { return idleCC.GetState() != connectivity.Ready })
	if got := connsOf(h.srv, aliceID); len(got) != 0 {
		t.Errorf("alice still has connections %v", got)
	}
	if _, err := echo(ctx, bobCC, "still here"); err != nil {
		t.Fatalf("bob after alice's revocation: %v", err)
	}
	if got := connsOf(h.srv, bobID); !slices.Equal(got, bobBefore) {
		t.Errorf("bob's connections %v, want the same one as before %v", got, bobBefore)
	}
	if recs := h.logs.find(map[string]any{"msg": "connection closed: peer credentials no longer valid", "spiffe_id": aliceID,
		"serial": pki.SerialHex(alice.Cert.SerialNumber), "reason": tlsconfig.ReasonRevoked}); len(recs) != 2 {
		t.Errorf("close records for alice = %v, want 2", recs)
	}
	if v := counterValue(t, m, "bank_connections_closed_total", map[string]string{"reason": tlsconfig.ReasonRevoked}); v != 2 {
		t.Errorf("bank_connections_closed_total{reason=revoked} = %v, want 2", v)
	}
}

// counterValue reads a counter (or gauge) series of m.
func counterValue(tb testing.TB, m *telemetry.Metrics, name string, labels map[string]string) float64 {
	tb.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
		for _, s := range fam.GetMetric() {
			if hasLabels(s, labels) {
				if s.GetCounter() != nil {
					return s.GetCounter().GetValue()
				}
				return s.GetGauge().GetValue()
			}
		}
	}
	return -1
}
