package service_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/service"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

// TestMetricsEndpoint reads /metrics, /healthz and /readyz over loopback HTTP after a
// rejected cert-less client and a few calls.
func TestMetricsEndpoint(t *testing.T) {
	f := newFixture(t)
	r := f.start(t)

	if _, err := call(r.dialCreds(t, f.noCertCreds(t))); status.Code(err) != codes.Unavailable {
		t.Fatalf("cert-less client: %v, want Unavailable", err)
	}
	cc := r.dial(t, f.pki.Client(t, aliceID))
	for range 2 {
		if _, err := call(cc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := call(r.dial(t, f.pki.Client(t, internID))); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("intern: %v, want PermissionDenied", err)
	}

	var fams = r.scrape(t)
	waitFor(t, "the rejected handshake in /metrics", func() bool {
		fams = r.scrape(t)
		v, _ := seriesValue(fams["bank_tls_handshake_failures_total"], map[string]string{"reason": tlsconfig.ReasonNoCertificate})
		return v == 1
	})
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   func(float64) bool
	}{
		{"calls by method and code", "grpc_server_handled_total",
			map[string]string{"grpc_service": "test.v1.TestService", "grpc_method": "Echo", "grpc_code": "OK"}, eq(2)},
		{"denied call by method and code", "grpc_server_handled_total",
			map[string]string{"grpc_method": "Echo", "grpc_code": "PermissionDenied"}, eq(1)},
		{"methods never called have a zero series", "grpc_server_started_total",
			map[string]string{"grpc_service": "bank.identity.v1.IdentityService", "grpc_method": "WhoAmI"}, eq(0)},
		{"authorization allowed by role", "bank_authz_decisions_total",
			map[string]string{"method": echo, "decision": telemetry.DecisionAllow, "role": "customer"}, eq(2)},
		{"authorization denied, no role", "bank_authz_decisions_total",
			map[string]string{"method": echo, "decision": telemetry.DecisionDeny, "role": "none"}, eq(1)},
		{"other handshake reasons pre-set", "bank_tls_handshake_failures_total",
			map[string]string{"reason": tlsconfig.ReasonUnknownCA}, eq(0)},
		{"reload errors pre-set for every watched group", "bank_reloads_total",
			map[string]string{"file": service.GroupPolicy, "outcome": telemetry.OutcomeError}, eq(0)},
		{"certificate expiry in the future", "bank_certificate_expiry_seconds",
			map[string]string{"name": "test", "spiffe_id": serverID}, func(v float64) bool { return v > 3600 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := seriesValue(fams[tt.metric], tt.labels)
			if !ok || !tt.want(v) {
				t.Fatalf("%s%v = %v (present %v)", tt.metric, tt.labels, v, ok)
			}
		})
	}
	t.Run("probes", func(t *testing.T) {
		if code, body := get(t, r.metricsURL+"/healthz"); code != http.StatusOK {
			t.Errorf("/healthz = %d %q", code, body)
		}
		if code, body := get(t, r.metricsURL+"/readyz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
			t.Errorf("/readyz = %d %q", code, body)
		}
	})
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

// TestReadinessAndShutdownOrder: a failing readiness check of the service makes /readyz
// 503 and names it; on shutdown the background tasks stop after the gRPC server, and
// what Setup opened is closed last, in reverse order.
func TestReadinessAndShutdownOrder(t *testing.T) {
	f := newFixture(t)
	var (
		mu     sync.Mutex
		events []string
	)
	record := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	impl := &echoServer{}
	svc := testService(impl)
	base := svc.Setup
	svc.Setup = func(ctx context.Context, env *service.Env) error {
		env.OnClose(func() error { record("close store"); return nil })
		env.OnClose(func() error { record("close client"); return nil })
		env.Go(func(ctx context.Context) { <-ctx.Done(); record("background stopped") })
		env.ReadinessCheck("dependency", func(context.Context) error { return errors.New("down") })
		return base(ctx, env)
	}
	rt, err := service.New(context.Background(), svc, f.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, mlis := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, lis, mlis) }()
	url := "http://" + mlis.Addr().String()
	var code int
	var body string
	waitFor(t, "the HTTP server", func() bool {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if code, body = get(t, url+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "dependency") || strings.Contains(body, "certificate") {
		t.Errorf("/readyz = %d %q, want 503 naming the failing check only", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	want := []string{"background stopped", "close client", "close store"}
	if !slices.Equal(events, want) {
		t.Fatalf("shutdown events %v, want %v", events, want)
	}
	if err := rt.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// TestServeStoppedAtOnce: a shutdown that arrives before the gRPC server started serving
// (a signal during start-up) is a clean stop, not an error.
func TestServeStoppedAtOnce(t *testing.T) {
	for i := range 5 {
		f := newFixture(t)
		rt, err := service.New(context.Background(), testService(&echoServer{}), f.cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := rt.Serve(ctx, listen(t), listen(t)); err != nil {
			t.Fatalf("round %d: Serve with its context already done = %v, want nil", i, err)
		}
	}
}

// TestRefusedStartOpensNothing: a policy that does not cover the service's methods, or
// broken TLS files, refuse the start before Setup runs; a failing Setup gets what it
// opened closed.
func TestRefusedStartOpensNothing(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(tb testing.TB, f *fixture, svc *service.Service)
		want      string
		wantSetup bool
	}{
		{name: "policy without the service's methods", want: "/test.v1.TestService/Echo", edit: func(tb testing.TB, f *fixture, _ *service.Service) {
			p := strings.Replace(testPolicy, "  customer: { methods: [/test.v1.TestService/Echo] }\n", "", 1)
			p = strings.Replace(p, "    roles: [customer]\n", "    roles: [teller]\n", 1)
			p = strings.Replace(p, `"/test.v1.TestService/*"`, `/test.v1.TestService/Other`, 1)
			writeFile(tb, f.cfg.Policy, []byte(p))
		}},
		{name: "embedded default policy without the methods", want: authz.ErrUncoveredMethods.Error(), edit: func(tb testing.TB, f *fixture, svc *service.Service) {
			f.cfg.Policy = ""
			svc.DefaultPolicy = []byte(strings.Replace(strings.Replace(testPolicy, "/test.v1.TestService/Echo", "/test.v1.TestService/Other", 1), `"/test.v1.TestService/*"`, "/test.v1.TestService/Other", 1))
		}},
		{name: "missing key", want: "no such file", edit: func(tb testing.TB, f *fixture, _ *service.Service) {
			f.cfg.Key = tb.TempDir() + "/nope.key"
		}},
		{name: "invalid configuration", want: "--handshake-timeout", edit: func(tb testing.TB, f *fixture, _ *service.Service) {
			f.cfg.HandshakeTimeout = 0
		}},
		{name: "setup fails", want: "setup failed", wantSetup: true, edit: func(tb testing.TB, f *fixture, svc *service.Service) {
			svc.Setup = func(_ context.Context, env *service.Env) error {
				env.OnClose(func() error { return os.WriteFile(f.cfg.DB+".closed", nil, 0o600) })
				return errors.New("setup failed")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			svc := testService(&echoServer{})
			tt.edit(t, f, &svc)
			setupRan := false
			setup := svc.Setup
			svc.Setup = func(ctx context.Context, env *service.Env) error {
				setupRan = true
				return setup(ctx, env)
			}
			_, err := service.New(context.Background(), svc, f.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error with %q", err, tt.want)
			}
			if setupRan != tt.wantSetup {
				t.Errorf("Setup ran: %v, want %v", setupRan, tt.wantSetup)
			}
			if _, statErr := os.Stat(f.cfg.DB + ".closed"); tt.wantSetup && errors.Is(statErr, fs.ErrNotExist) {
				t.Error("what the failed Setup opened was not closed")
			}
		})
	}
}
