package service_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mtlsbank/internal/auditlog/auditlogtest"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/service"
	"mtlsbank/internal/tlsconfig"
)

const (
	serverID = "spiffe://bank.local/service/test"
	aliceID  = "spiffe://bank.local/customer/alice"
	bobID    = "spiffe://bank.local/customer/bob"
	eveID    = "spiffe://bank.local/customer/eve"
	tellerID = "spiffe://bank.local/teller/tina"
	internID = "spiffe://bank.local/intern/ivan"
	echo     = "/test.v1.TestService/Echo"
	// waitLimit bounds every wait on a condition.
	waitLimit = 10 * time.Second
)

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// testPolicy grants Echo to customers and tellers; interns get nothing but the basics.
const testPolicy = `trust_domain: bank.local
identities:
  - name: customers
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/" }
    roles: [customer]
  - name: tellers
    match: { spiffe_id_prefix: "spiffe://bank.local/teller/" }
    roles: [teller]
roles:
  customer: { methods: [/test.v1.TestService/Echo] }
  teller:   { scope: any, methods: ["/test.v1.TestService/*"] }
  authenticated:
    methods:
      - /bank.identity.v1.IdentityService/WhoAmI
      - /grpc.health.v1.Health/*
      - /grpc.reflection.v1.ServerReflection/*
      - /grpc.reflection.v1alpha.ServerReflection/*
`

// fixture is a service's files on disk (a fresh PKI, the server's certificate and key, the
// bundle, a CRL revoking eve, a policy file) and a configuration pointing at them.
type fixture struct {
	pki    *pkitest.PKI
	server *pki.Leaf
	eve    *pki.Leaf
	cfg    service.Config
}

// newFixture writes the files and returns the configuration every test starts from: the
// flags' defaults (parsed for real) with the paths, loopback addresses and a 10ms poll.
func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	p := pkitest.New(tb)
	f := &fixture{pki: p, server: p.Server(tb, serverID), eve: p.Client(tb, eveID)}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f.cfg.RegisterFlags(fs, service.Defaults{Name: "test", Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0"})
	if err := service.ParseFlags(fs, nil, func(string) string { return "" }); err != nil {
		tb.Fatal(err)
	}
	f.cfg.Cert, f.cfg.Key = p.WriteLeaf(tb, "server", f.server)
	f.cfg.CA = p.WriteBundle(tb)
	f.cfg.Intermediates = p.Dir + "/intermediates.crt"
	writeFile(tb, f.cfg.Intermediates, pki.EncodeCertsPEM(p.Intermediate.Cert))
	f.cfg.CRL = p.WriteCRL(tb, p.CRL(tb, f.eve.Cert))
	f.cfg.Policy = p.Dir + "/policy.yaml"
	writeFile(tb, f.cfg.Policy, []byte(testPolicy))
	f.cfg.DB = p.Dir + "/unused.db"
	f.cfg.AuditKey, _ = auditlogtest.WriteKeyPair(tb, p.Dir, "test")
	f.cfg.ReloadInterval = 10 * time.Millisecond
	f.cfg.RateLimit = 0 // tests that want it set it
	f.cfg.ShutdownGrace = waitLimit
	return f
}

// running is a started service.
type running struct {
	*fixture
	rt         *service.Runtime
	svc        *echoServer
	addr       string // gRPC, loopback TCP
	metricsURL string
	logs       *logBuffer
}

// start assembles the test service with f.cfg and serves it over loopback TCP; cleanup
// shuts it down and checks that Serve returned nil.
func (f *fixture) start(tb testing.TB, opts ...service.Option) *running {
	tb.Helper()
	r := &running{fixture: f, svc: &echoServer{}, logs: &logBuffer{}}
	rt, err := service.New(context.Background(), testService(r.svc), f.cfg, slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), opts...)
	if err != nil {
		tb.Fatalf("service.New: %v", err)
	}
	r.rt = rt
	lis := listen(tb)
	mlis := listen(tb)
	r.addr, r.metricsURL = lis.Addr().String(), "http://"+mlis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, lis, mlis) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Serve: %v", err)
			}
		case <-time.After(2 * waitLimit):
			tb.Error("Serve did not return after its context ended")
		}
	})
	return r
}

func listen(tb testing.TB) net.Listener {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return lis
}

// testService is the service the runtime serves in these tests: Echo only.
func testService(impl *echoServer) service.Service {
	return service.Service{
		Name:          "test",
		DefaultPolicy: []byte(testPolicy),
		Services:      []*grpc.ServiceDesc{&echoDesc},
		Setup: func(_ context.Context, env *service.Env) error {
			env.Server.RegisterService(&echoDesc, impl)
			return nil
		},
	}
}

// echoServer counts the calls that reached it.
type echoServer struct{ calls atomic.Int64 }

var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.v1.TestService",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			handler := func(_ context.Context, req any) (any, error) {
				srv.(*echoServer).calls.Add(1)
				return req, nil
			}
			if interceptor == nil {
				return handler(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: echo}, handler)
		},
	}},
}

// clientCreds returns credentials presenting leaf and trusting the fixture's bundle.
func (f *fixture) clientCreds(tb testing.TB, leaf *pki.Leaf) credentials.TransportCredentials {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, leaf.TLSCertificate(), f.pki.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	return tlsconfig.ClientCredentials(src, "localhost")
}

// dial returns a client connection presenting leaf, closed at cleanup.
func (r *running) dial(tb testing.TB, leaf *pki.Leaf) *grpc.ClientConn {
	tb.Helper()
	return r.dialCreds(tb, r.clientCreds(tb, leaf))
}

func (r *running) dialCreds(tb testing.TB, creds credentials.TransportCredentials) *grpc.ClientConn {
	tb.Helper()
	cc, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// call makes one Echo call and returns the serial of the server certificate of the
// connection it went over.
func call(cc *grpc.ClientConn) (*big.Int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var p peer.Peer
	err := cc.Invoke(ctx, echo, wrapperspb.String("hi"), new(wrapperspb.StringValue), grpc.Peer(&p))
	if err != nil {
		return nil, err
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	return ti.State.PeerCertificates[0].SerialNumber, nil
}

// noCertCreds are credentials of a client that sends no certificate at all.
func (f *fixture) noCertCreds(tb testing.TB) credentials.TransportCredentials {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, f.pki.Client(tb, aliceID).TLSCertificate(), f.pki.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := tlsconfig.ClientConfig(src, "localhost")
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
	return credentials.NewTLS(cfg)
}

// metric returns the value of the series of name whose labels include labels, from the
// service's registry (a counter's or gauge's value); ok is false when there is none.
func (r *running) metric(tb testing.TB, name string, labels map[string]string) (v float64, ok bool) {
	tb.Helper()
	fams, err := r.rt.Metrics().Registry().Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, fam := range fams {
		if fam.GetName() == name {
			return seriesValue(fam, labels)
		}
	}
	return 0, false
}

// reloads returns bank_reloads_total for a group and outcome.
func (r *running) reloads(tb testing.TB, group, outcome string) float64 {
	tb.Helper()
	v, _ := r.metric(tb, "bank_reloads_total", map[string]string{"file": group, "outcome": outcome})
	return v
}

// scrape fetches /metrics over HTTP and parses it.
func (r *running) scrape(tb testing.TB) map[string]*dto.MetricFamily {
	tb.Helper()
	code, body := get(tb, r.metricsURL+"/metrics")
	if code != http.StatusOK {
		tb.Fatalf("/metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func seriesValue(fam *dto.MetricFamily, labels map[string]string) (float64, bool) {
next:
	for _, m := range fam.GetMetric() {
		have := make(map[string]string)
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, want := range labels {
			if have[k] != want {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// get fetches url and returns the status code and body.
func get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeFile replaces path's content atomically, as certificate tools do.
func writeFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := pki.WriteFileAtomic(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) contains(subs ...string) bool { return l.count(subs...) > 0 }

// count returns how many records hold every one of subs.
func (l *logBuffer) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.buf.String()) {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}
