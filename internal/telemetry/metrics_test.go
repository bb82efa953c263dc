package telemetry_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// TestMetricsCountRealTraffic runs a real mTLS gRPC server instrumented like a service,
// makes one good call and one connection without a client certificate, and reads the
// counters back from /metrics over loopback HTTP.
func TestMetricsCountRealTraffic(t *testing.T) {
	p := pkitest.New(t)
	m := telemetry.NewMetrics()
	_, base := serve(t, m)

	serverSrc := newSource(t, p.Server(t, "spiffe://bank.local/service/accounts"), p.Bundle)
	failures := make(chan error, 8)
	creds := tlsconfig.ServerCredentials(serverSrc, tlsconfig.WithHandshakeFailureHook(func(err error) {
		m.ObserveHandshakeFailure(err)
		failures <- err
	}))
	gs := grpc.NewServer(grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(m.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.StreamServerInterceptor()))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	m.InitializeMethods(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)

	labels := map[string]string{"grpc_service": "grpc.health.v1.Health", "grpc_method": "Check", "grpc_code": "OK"}
	if v, ok := value(scrape(t, base), "grpc_server_handled_total", labels); !ok || v != 0 {
		t.Fatalf("before any call: grpc_server_handled_total = %v (present %v), want a 0 series", v, ok)
	}

	clientSrc := newSource(t, p.Client(t, "spiffe://bank.local/teller/tina"), p.Bundle)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(tlsconfig.ClientCredentials(clientSrc, "localhost")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check: %v", err)
	}

	// A client without a certificate: TLS 1.3 finishes on its side, the server rejects.
	raw, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: p.Pool, ServerName: "localhost", NextProtos: []string{"h2"},
	})
	if err == nil {
		_, _ = raw.Read(make([]byte, 1))
		raw.Close()
	}
	select {
	case <-failures:
	case <-time.After(waitFor):
		t.Fatal("the server reported no handshake failure")
	}

	fams := scrape(t, base)
	for _, tc := range []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"handled call", "grpc_server_handled_total", labels, 1},
		{"handling time observed", "grpc_server_handling_seconds", map[string]string{"grpc_method": "Check"}, 1},
		{"handshake without certificate", "bank_tls_handshake_failures_total", map[string]string{"reason": tlsconfig.ReasonNoCertificate}, 1},
		{"other reasons pre-set", "bank_tls_handshake_failures_total", map[string]string{"reason": tlsconfig.ReasonUnknownCA}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := value(fams, tc.metric, tc.labels); !ok || got != tc.want {
				t.Fatalf("%s%v = %v (present %v), want %v", tc.metric, tc.labels, got, ok, tc.want)
			}
		})
	}
}

func TestMetricsCounters(t *testing.T) {
	const method = "/bank.accounts.v1.AccountsService/GetAccount"
	tests := []struct {
		name    string
		observe func(m *telemetry.Metrics)
		metric  string
		labels  map[string]string
		want    float64
	}{
		{
			name: "allowed call by role",
			observe: func(m *telemetry.Metrics) {
				m.ObserveAuthz(method, codes.OK, []string{"teller"})
				m.ObserveAuthz(method, codes.OK, []string{"teller"})
			},
			metric: "bank_authz_decisions_total",
			labels: map[string]string{"method": method, "decision": telemetry.DecisionAllow, "role": "teller"},
			want:   2,
		},
		{
			name: "denied call, several roles sorted",
			observe: func(m *telemetry.Metrics) {
				m.ObserveAuthz(method, codes.PermissionDenied, []string{"teller", "auditor"})
			},
			metric: "bank_authz_decisions_total",
			labels: map[string]string{"method": method, "decision": telemetry.DecisionDeny, "role": "auditor+teller"},
			want:   1,
		},
		{
			name:    "unauthenticated call has no role",
			observe: func(m *telemetry.Metrics) { m.ObserveAuthz(method, codes.Unauthenticated, nil) },
			metric:  "bank_authz_decisions_total",
			labels:  map[string]string{"method": method, "decision": telemetry.DecisionUnauthenticated, "role": "none"},
			want:    1,
		},
		{
			name:    "failed reload",
			observe: func(m *telemetry.Metrics) { m.ObserveReload("crl", errTest) },
			metric:  "bank_reloads_total",
			labels:  map[string]string{"file": "crl", "outcome": telemetry.OutcomeError},
			want:    1,
		},
		{
			name:    "reload series pre-set",
			observe: func(m *telemetry.Metrics) { m.InitializeReloads("crl", "policy") },
			metric:  "bank_reloads_total",
			labels:  map[string]string{"file": "policy", "outcome": telemetry.OutcomeError},
			want:    0,
		},
		{
			name:    "successful reload",
			observe: func(m *telemetry.Metrics) { m.ObserveReload("certificate", nil) },
			metric:  "bank_reloads_total",
			labels:  map[string]string{"file": "certificate", "outcome": telemetry.OutcomeSuccess},
			want:    1,
		},
		{
			name:    "revoked handshake",
			observe: func(m *telemetry.Metrics) { m.ObserveHandshakeFailure(tlsconfig.ErrRevoked) },
			metric:  "bank_tls_handshake_failures_total",
			labels:  map[string]string{"reason": tlsconfig.ReasonRevoked},
			want:    1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := telemetry.NewMetrics()
			_, base := serve(t, m)
			tc.observe(m)
			if got, ok := value(scrape(t, base), tc.metric, tc.labels); !ok || got != tc.want {
				t.Fatalf("%s%v = %v (present %v), want %v", tc.metric, tc.labels, got, ok, tc.want)
			}
		})
	}
}

func TestExpiryGaugeFollowsRotation(t *testing.T) {
	p := pkitest.New(t)
	now := time.Now().Truncate(time.Second)
	m := telemetry.NewMetrics(telemetry.WithClock(func() time.Time { return now }))
	_, base := serve(t, m)
	const id = "spiffe://bank.local/service/accounts"
	first := p.Server(t, id, pki.WithValidity(now.Add(-time.Hour), now.Add(2*time.Hour)))
	second := p.Server(t, id, pki.WithValidity(now.Add(-time.Minute), now.Add(5*time.Hour)))
	src := newSource(t, first, p.Bundle)
	if err := m.WatchCertificate("server", func() *x509.Certificate { return src.Certificate().Leaf }); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchCertificate("server", func() *x509.Certificate { return nil }); !errors.Is(err, telemetry.ErrDuplicateName) {
		t.Fatalf("second WatchCertificate(server) = %v, want ErrDuplicateName", err)
	}
	labels := map[string]string{"name": "server", "spiffe_id": id}
	for _, tc := range []struct {
		name string
		leaf *pki.Leaf
		want float64
	}{
		{"first certificate", first, (2 * time.Hour).Seconds()},
		{"after rotation", second, (5 * time.Hour).Seconds()},
	} {
		if err := src.SetCertificate(tc.leaf.TLSCertificate()); err != nil {
			t.Fatal(err)
		}
		if got, ok := value(scrape(t, base), "bank_certificate_expiry_seconds", labels); !ok || got != tc.want {
			t.Fatalf("%s: bank_certificate_expiry_seconds = %v (present %v), want %v", tc.name, got, ok, tc.want)
		}
	}
}

func TestCheckExpiry(t *testing.T) {
	p := pkitest.New(t)
	now := time.Now().Truncate(time.Second)
	const threshold = 24 * time.Hour
	tests := []struct {
		name     string
		notAfter time.Time
		want     int
		level    string
	}{
		{"far from expiry", now.Add(3 * threshold), 0, ""},
		{"within the threshold", now.Add(threshold / 2), 1, "WARN"},
		{"expired", now.Add(-time.Minute), 1, "ERROR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := telemetry.NewMetrics(telemetry.WithClock(func() time.Time { return now }))
			leaf := p.Client(t, "spiffe://bank.local/service/payments", pki.WithValidity(now.Add(-time.Hour), tc.notAfter))
			if err := m.WatchCertificate("client", func() *x509.Certificate { return leaf.Cert }); err != nil {
				t.Fatal(err)
			}
			var logs strings.Builder
			if got := m.CheckExpiry(slog.New(slog.NewTextHandler(&logs, nil)), threshold); got != tc.want {
				t.Fatalf("CheckExpiry = %d, want %d; logs:\n%s", got, tc.want, logs.String())
			}
			if tc.level != "" && (!strings.Contains(logs.String(), "level="+tc.level) || !strings.Contains(logs.String(), "name=client")) {
				t.Fatalf("want a %s record naming the certificate, got:\n%s", tc.level, logs.String())
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	var storeDown atomic.Bool
	store := func(context.Context) error {
		if storeDown.Load() {
			return errTest
		}
		return nil
	}
	stuck := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name     string
		opts     []telemetry.ServerOption
		down     bool
		drain    bool
		wantCode int
		wantBody string
	}{
		{"no checks", nil, false, false, 200, "ok"},
		{"all pass", []telemetry.ServerOption{telemetry.WithReadinessCheck("store", store)}, false, false, 200, "ok"},
		{"store down", []telemetry.ServerOption{telemetry.WithReadinessCheck("certificate", func(context.Context) error { return nil }), telemetry.WithReadinessCheck("store", store)}, true, false, 503, "not ready: store"},
		{"check past its timeout", []telemetry.ServerOption{telemetry.WithCheckTimeout(20 * time.Millisecond), telemetry.WithReadinessCheck("accounts", stuck)}, false, false, 503, "not ready: accounts"},
		{"panicking check", []telemetry.ServerOption{telemetry.WithReadinessCheck("accounts", func(context.Context) error { panic("bug") })}, false, false, 503, "not ready: accounts"},
		{"draining", []telemetry.ServerOption{telemetry.WithReadinessCheck("store", store)}, false, true, 503, "not ready: shutting down"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storeDown.Store(tc.down)
			srv, base := serve(t, telemetry.NewMetrics(), tc.opts...)
			if tc.drain {
				srv.Drain()
			}
			code, body := get(t, base+"/readyz")
			if code != tc.wantCode || strings.TrimSpace(body) != tc.wantBody {
				t.Fatalf("/readyz = %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
			if code, _ := get(t, base+"/healthz"); code != 200 {
				t.Fatalf("/healthz = %d, want 200 whatever readiness says", code)
			}
		})
	}
}

func TestReadyzFlips(t *testing.T) {
	var down atomic.Bool
	_, base := serve(t, telemetry.NewMetrics(), telemetry.WithReadinessCheck("store", func(context.Context) error {
		if down.Load() {
			return errTest
		}
		return nil
	}))
	for _, step := range []struct {
		down bool
		want int
	}{{false, 200}, {true, 503}, {false, 200}} {
		down.Store(step.down)
		if code, body := get(t, base+"/readyz"); code != step.want {
			t.Fatalf("store down=%v: /readyz = %d %q, want %d", step.down, code, body, step.want)
		}
	}
}

func TestNewServerRejectsBadChecks(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name string
		opts []telemetry.ServerOption
	}{
		{"empty name", []telemetry.ServerOption{telemetry.WithReadinessCheck("", ok)}},
		{"nil check", []telemetry.ServerOption{telemetry.WithReadinessCheck("store", nil)}},
		{"comma in name", []telemetry.ServerOption{telemetry.WithReadinessCheck("a,b", ok)}},
		{"duplicate", []telemetry.ServerOption{telemetry.WithReadinessCheck("store", ok), telemetry.WithReadinessCheck("store", ok)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := telemetry.NewServer(telemetry.NewMetrics(), nil, tc.opts...); err == nil {
				t.Fatal("NewServer succeeded, want an error")
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	_, base := serve(t, telemetry.NewMetrics())
	resp, err := http.Post(base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

func newSource(tb testing.TB, leaf *pki.Leaf, bundle []*x509.Certificate) *tlsconfig.Source {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, leaf.TLSCertificate(), bundle)
	if err != nil {
		tb.Fatalf("NewSource: %v", err)
	}
	return src
}
