package svidsource_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/svidsource"
	"mtlsbank/internal/svidsource/workloadapitest"
	"mtlsbank/internal/tlsconfig"
)

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// waitFor polls cond until it holds, failing the test after 20 seconds.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOpenWithoutAgent(t *testing.T) {
	logger, logs := newLogger()
	_, err := svidsource.Open(t.Context(), "unix://"+t.TempDir()+"/agent.sock", td,
		svidsource.WithLogger(logger), svidsource.WithStartTimeout(1500*time.Millisecond))
	if !errors.Is(err, svidsource.ErrUnreachable) {
		t.Fatalf("Open without an agent: %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "is the SPIRE agent running") {
		t.Errorf("error does not say what to check: %v", err)
	}
	if out := logs.String(); !strings.Contains(out, "waiting for an X.509-SVID from the SPIFFE Workload API") ||
		!strings.Contains(out, "no X.509-SVID from the SPIFFE Workload API yet") {
		t.Errorf("the wait is not logged:\n%s", out)
	}
}

func TestOpenWithoutEntry(t *testing.T) {
	agent := workloadapitest.New(t)
	_, err := svidsource.Open(t.Context(), agent.Addr(), td, svidsource.WithStartTimeout(1500*time.Millisecond))
	if !errors.Is(err, svidsource.ErrNoIdentity) {
		t.Fatalf("Open without a registration entry: %v, want ErrNoIdentity", err)
	}
	if !strings.Contains(err.Error(), "no registration entry matches this process") {
		t.Errorf("error does not name the registration entry: %v", err)
	}
}

func TestOpenRefusesBadEndpoint(t *testing.T) {
	for _, endpoint := range []string{"", "/tmp/agent.sock", "http://127.0.0.1:1", "tcp://localhost:1", "tcp://127.0.0.1:8081"} {
		if _, err := svidsource.Open(t.Context(), endpoint, td); err == nil || errors.Is(err, svidsource.ErrUnreachable) {
			t.Errorf("Open(%q) = %v, want an endpoint error", endpoint, err)
		}
	}
}

// TestOpenWaitsForLateEntry: an entry that reaches the agent after the workload asked is
// picked up within the start timeout.
func TestOpenWaitsForLateEntry(t *testing.T) {
	p := pkitest.New(t)
	agent := workloadapitest.New(t)
	done := make(chan error, 1)
	var w *svidsource.Workload
	go func() {
		var err error
		w, err = svidsource.Open(t.Context(), agent.Addr(), td, svidsource.WithStartTimeout(20*time.Second))
		done <- err
	}()
	waitFor(t, "a first refused attempt", func() bool { return agent.Streams() >= 1 })
	leaf := p.Server(t, "spiffe://bank.local/service/accounts")
	agent.Set(leaf, p.Bundle)
	if err := <-done; err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer w.Close()
	if !w.Source().Certificate().Leaf.Equal(leaf.Cert) {
		t.Fatal("the source does not present the SVID the agent issued")
	}
}

// TestRotation: each SVID the agent pushes is presented from the next handshake on, the
// rotation is logged with the old and the new serial, and OnUpdate hears of it.
func TestRotation(t *testing.T) {
	p := pkitest.New(t)
	agent := workloadapitest.New(t)
	first := p.Server(t, "spiffe://bank.local/service/accounts")
	agent.Set(first, p.Bundle)
	logger, logs := newLogger()
	var rotations atomic.Int64
	w, err := svidsource.Open(t.Context(), agent.Addr(), td, svidsource.WithLogger(logger),
		svidsource.WithHooks(svidsource.Hooks{OnUpdate: func(u tlsconfig.Update) {
			if u.Rotated {
				rotations.Add(1)
			}
		}}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go w.Run(ctx)

	client := clientSource(t, p)
	last := first
	for i := range 3 {
		next := p.Server(t, "spiffe://bank.local/service/accounts")
		agent.Set(next, p.Bundle)
		waitFor(t, "the rotated SVID", func() bool { return w.Source().Certificate().Leaf.Equal(next.Cert) })
		if got := peerSerial(t, w.Source(), client); got.Cmp(next.Cert.SerialNumber) != 0 {
			t.Fatalf("rotation %d: the server presented serial %x, want %x", i+1, got, next.Cert.SerialNumber)
		}
		line := "old_serial=" + pki.SerialHex(last.Cert.SerialNumber) + " new_serial=" + pki.SerialHex(next.Cert.SerialNumber)
		if !strings.Contains(logs.String(), line) {
			t.Fatalf("rotation %d not logged with %q:\n%s", i+1, line, logs.String())
		}
		last = next
	}
	waitFor(t, "three rotations counted", func() bool { return rotations.Load() == 3 })
}

// TestAgentErrorsAfterStart: once the identity is taken away (the entry deleted), every
// failed attempt reaches OnError and the SVID in hand stays in use; a new SVID is taken
// when the agent has one again. An SVID of another trust domain is refused and counted.
func TestAgentErrorsAfterStart(t *testing.T) {
	p := pkitest.New(t)
	agent := workloadapitest.New(t)
	first := p.Client(t, "spiffe://bank.local/customer/alice")
	agent.Set(first, p.Bundle)
	logger, logs := newLogger()
	var errs atomic.Int64
	w, err := svidsource.Open(t.Context(), agent.Addr(), td, svidsource.WithLogger(logger),
		svidsource.WithHooks(svidsource.Hooks{OnError: func(error) { errs.Add(1) }}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go w.Run(ctx)

	agent.Deny()
	waitFor(t, "a Workload API error counted", func() bool { return errs.Load() >= 1 })
	if !w.Source().Certificate().Leaf.Equal(first.Cert) {
		t.Fatal("the SVID in hand was dropped")
	}
	if !strings.Contains(logs.String(), "stays in use until it expires") {
		t.Errorf("the failed watch is not logged:\n%s", logs.String())
	}

	second := p.Client(t, "spiffe://bank.local/customer/alice")
	agent.Set(second, p.Bundle)
	waitFor(t, "the SVID issued after the outage", func() bool { return w.Source().Certificate().Leaf.Equal(second.Cert) })

	before := errs.Load()
	foreign := p.Client(t, "spiffe://evil.example/customer/alice")
	agent.Set(foreign, p.Bundle)
	waitFor(t, "the foreign SVID refused", func() bool { return errs.Load() > before })
	if !w.Source().Certificate().Leaf.Equal(second.Cert) {
		t.Fatal("an SVID of another trust domain replaced the one in hand")
	}
	if !strings.Contains(logs.String(), "update refused") {
		t.Errorf("the refused update is not logged:\n%s", logs.String())
	}
}

// clientSource is a file-style client identity trusting p.
func clientSource(tb testing.TB, p *pkitest.PKI) *tlsconfig.Source {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, p.Client(tb, "spiffe://bank.local/customer/bob").TLSCertificate(), p.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	return src
}
