package reload_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/reload"
	"mtlsbank/internal/tlsconfig"
)

const serverID = "spiffe://bank.local/service/accounts"

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// services stands for a grpc.Server's GetServiceInfo: the methods every policy
// reloaded in these tests must cover.
func services() map[string]grpc.ServiceInfo {
	return map[string]grpc.ServiceInfo{
		"bank.test.v1.TestService": {Methods: []grpc.MethodInfo{{Name: "Get"}, {Name: "Put"}}},
	}
}

const goodPolicy = `trust_domain: bank.local
roles:
  auditor:
    scope: any
    methods: [/bank.test.v1.TestService/Get]
  teller:
    scope: any
    methods: [/bank.test.v1.TestService/Put]
identities:
  - name: auditors
    match: { spiffe_id_prefix: "spiffe://bank.local/auditor/" }
    roles: [auditor]
`

// fixture is a service's reloadable state on disk and in memory, with a Watcher over it.
type fixture struct {
	pki      *pkitest.PKI
	leaf     *pki.Leaf
	cert     string
	key      string
	ca       string
	crl      string
	policy   string
	src      *tlsconfig.Source
	az       *authz.Authorizer
	w        *reload.Watcher
	reports  *recorder
	logs     *syncBuffer
	cleanCRL []byte
}

func newFixture(tb testing.TB, opts ...reload.Option) *fixture {
	tb.Helper()
	p := pkitest.New(tb)
	f := &fixture{pki: p, leaf: p.Server(tb, serverID), reports: newRecorder(), logs: &syncBuffer{}}
	f.cert, f.key = p.WriteLeaf(tb, "accounts", f.leaf)
	f.ca = p.WriteBundle(tb)
	f.cleanCRL = p.CRL(tb)
	f.crl = p.WriteCRL(tb, f.cleanCRL)
	f.policy = filepath.Join(p.Dir, "policy.yaml")
	writeFile(tb, f.policy, []byte(goodPolicy))

	src, err := tlsconfig.LoadSource(td, tlsconfig.Files{Cert: f.cert, Key: f.key, CA: f.ca, CRL: f.crl})
	if err != nil {
		tb.Fatalf("LoadSource: %v", err)
	}
	policy, err := authz.LoadPolicy(f.policy)
	if err != nil {
		tb.Fatalf("LoadPolicy: %v", err)
	}
	f.src, f.az = src, authz.NewAuthorizer(policy, nil)

	logger := slog.New(slog.NewJSONHandler(f.logs, nil))
	opts = append([]reload.Option{reload.WithReport(f.reports.record)}, opts...)
	f.w = reload.New(logger, opts...)
	for _, g := range []struct {
		name  string
		fn    reload.Func
		paths []string
	}{
		{"bundle", reload.Bundle(src), []string{f.ca}},
		{"certificate", reload.Certificate(src), []string{f.cert, f.key}},
		{"crl", reload.CRL(src, nil), []string{f.crl}},
		{"policy", reload.Policy(f.az, services), []string{f.policy}},
	} {
		if err := f.w.Add(g.name, g.fn, g.paths...); err != nil {
			tb.Fatalf("Add %s: %v", g.name, err)
		}
	}
	return f
}

// settle runs the two polls a change needs (seen, then held still) and returns the
// attempts of the second; the first must attempt nothing.
func (f *fixture) settle(tb testing.TB) []reload.Result {
	tb.Helper()
	ctx := context.Background()
	if got := f.w.CheckNow(ctx); len(got) != 0 {
		tb.Fatalf("first poll after a change attempted %v; want nothing until the change holds still", got)
	}
	return f.w.CheckNow(ctx)
}

// serial is the serial of the certificate src presents.
func (f *fixture) serial() string { return f.src.Certificate().Leaf.SerialNumber.Text(16) }

func writeFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

func writeAtomic(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := pki.WriteFileAtomic(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

func keyPEM(tb testing.TB, l *pki.Leaf) []byte {
	tb.Helper()
	b, err := pki.EncodeKeyPEM(l.Key)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// recorder collects WithReport calls; ch receives each one too, for Run tests.
type recorder struct {
	mu  sync.Mutex
	all []reload.Result
	ch  chan reload.Result
}

func newRecorder() *recorder { return &recorder{ch: make(chan reload.Result, 64)} }

func (r *recorder) record(group string, err error) {
	r.mu.Lock()
	r.all = append(r.all, reload.Result{Group: group, Err: err})
	r.mu.Unlock()
	select {
	case r.ch <- reload.Result{Group: group, Err: err}:
	default:
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func big1() *big.Int { return big.NewInt(1) }
