package service_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"mtlsbank/internal/service"
)

// childEnv makes the test binary run the test service instead of the tests: a real
// process, started by a test under a lowered file descriptor limit (prlimit).
const childEnv = "SERVICE_TEST_RUN_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		service.Main("test", runChild)
		return
	}
	os.Exit(m.Run())
}

// runChild is the test service's run, as a service's main has it.
func runChild(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, logger *slog.Logger, opts ...service.Option) error {
	var cfg service.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs, service.Defaults{Name: "test", Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0"})
	if err := service.ParseFlags(fs, args, getenv); err != nil {
		return err
	}
	rt, err := service.New(ctx, testService(&echoServer{}), cfg, logger, opts...)
	if err != nil {
		return err
	}
	return rt.Run(ctx)
}

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrapeValue reads one series from a /metrics page ("name{labels}"), -1 if absent.
func scrapeValue(tb testing.TB, url, series string) float64 {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestConnectionFloodUnderFDLimit runs the service as a real process whose file
// descriptor limit is 128 (prlimit, soft and hard, so Go cannot raise it), and floods it
// with silent TCP connections: first 300 from 127.0.0.1, then 32 from each of four
// other addresses, more than the total cap. Throughout, a CRL reload succeeds (the
// reserve keeps descriptors for it) and a client dialing from 127.0.0.2 completes a call
// during the single-address flood. Without the caps, the flood takes every descriptor:
// the reload fails with "too many open files" and the client cannot get in.
func TestConnectionFloodUnderFDLimit(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit not installed")
	}
	const fdLimit = 128
	f := newFixture(t)
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	args := []string{"--nofile=" + strconv.Itoa(fdLimit) + ":" + strconv.Itoa(fdLimit), os.Args[0],
		"--listen=" + addr, "--metrics-listen=" + metricsAddr,
		"--cert=" + f.cfg.Cert, "--key=" + f.cfg.Key, "--ca=" + f.cfg.CA, "--crl=" + f.cfg.CRL,
		"--policy=" + f.cfg.Policy, "--db=" + f.cfg.DB, "--audit-key=" + f.cfg.AuditKey,
		"--reload-interval=20ms", "--handshake-timeout=1m", "--rate-limit=0",
		"--max-connections-per-source=32",
		// The handshaking caps nearly out of the way (63 once lowered with
		// --max-connections to the budget of 64: 4032*64/4096, no per-source one), so that
		// silent connections fill the file descriptor budget: TestHandshakingBudget
		// (grpcserver) attacks those caps.
		"--max-handshaking=4032", "--max-handshaking-per-source=0",
	}
	cmd := exec.Command("prlimit", args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("service output:\n%s", out.String())
		}
	})
	metrics := "http://" + metricsAddr + "/metrics"
	waitFor(t, "the service to serve", func() bool { return scrapeValue(t, metrics, "bank_connections_open") >= 0 })
	if !strings.Contains(out.String(), fmt.Sprintf("soft=%d hard=%d", fdLimit, fdLimit)) {
		t.Errorf("no log of the file descriptor limit %d", fdLimit)
	}

	// A legitimate client from another address, dialed and used during each flood.
	legit := func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(f.clientCreds(t, f.pki.Client(t, aliceID))),
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
		if err != nil {
			return err
		}
		defer cc.Close()
		_, err = call(cc)
		return err
	}
	reloads := 0
	reloadCRL := func(stage string) {
		t.Helper()
		reloads++
		f.pki.WriteCRL(t, f.pki.CRL(t, f.eve.Cert, f.pki.Client(t, bobID).Cert))
		want := float64(reloads)
		waitFor(t, "the CRL reload "+stage, func() bool {
			if strings.Contains(out.String(), "too many open files") {
				t.Fatalf("%s: the service ran out of file descriptors", stage)
			}
			return scrapeValue(t, metrics, `bank_reloads_total{file="crl",outcome="success"}`) >= want
		})
	}

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	dialN := func(ip string, n int) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		for range n {
			// A refused connection may be reset before connect returns: that is the
			// cap at work, not a failure of the flood.
			if c, err := d.Dial("tcp", addr); err == nil {
				flood = append(flood, c)
			}
		}
	}

	// settled: the server has taken every flood connection, accepting or refusing it (or
	// cannot even serve /metrics any more, descriptors exhausted).
	settled := func(n int) func() bool {
		return func() bool {
			if strings.Contains(out.String(), "too many open files") {
				t.Fatalf("the flood exhausted the service's file descriptors")
			}
			open := scrapeValue(t, metrics, "bank_connections_open")
			refused := 0.0
			for _, reason := range []string{"per_source", "total", "handshaking"} {
				refused += scrapeValue(t, metrics, `bank_connections_refused_total{reason="`+reason+`"}`)
			}
			return open < 0 || open+refused >= float64(n)
		}
	}
	dialN("127.0.0.1", 300)
	waitFor(t, "the single-address flood to be taken", settled(300))
	reloadCRL("during the single-address flood")
	if err := legit(); err != nil {
		t.Fatalf("a client from 127.0.0.2 during the flood: %v", err)
	}
	if v := scrapeValue(t, metrics, `bank_connections_refused_total{reason="per_source"}`); v < 300-32 {
		t.Errorf("bank_connections_refused_total{reason=per_source} = %v, want at least %d", v, 300-32)
	}

	for _, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"} {
		dialN(ip, 32)
	}
	waitFor(t, "the multi-address flood to be taken", settled(300+4*32))
	reloadCRL("with the total cap reached")
	// 63 strangers handshake at most: the 64th slot is an authenticated peer's, so the
	// flood meets the handshaking cap (the oldest stranger of 127.0.0.1 makes room for
	// one from an address holding fewer), or the total one.
	if v := scrapeValue(t, metrics, `bank_connections_refused_total{reason="total"}`) +
		scrapeValue(t, metrics, `bank_connections_refused_total{reason="handshaking"}`); v <= 0 {
		t.Errorf("bank_connections_refused_total{reason=total|handshaking} = %v, want some", v)
	}
	if v := scrapeValue(t, metrics, "bank_connections_open"); v > fdLimit-service.FDReserve {
		t.Errorf("bank_connections_open = %v, over the budget %d", v, fdLimit-service.FDReserve)
	}
}

// TestHandshakingCapFlags: --max-handshaking and --max-handshaking-per-source reach the
// server. Silent connections from one address stop at the per-source cap, from several at
// the total one, each refusal counted by reason, while a client that authenticated before
// keeps calling on its connection.
func TestHandshakingCapFlags(t *testing.T) {
	f := newFixture(t)
	f.cfg.MaxHandshaking, f.cfg.MaxHandshakingPerSource = 3, 2
	r := f.start(t)
	cc := r.dial(t, f.pki.Client(t, aliceID))
	if _, err := call(cc); err != nil {
		t.Fatal(err)
	}
	refused := func(reason string) float64 {
		v, _ := r.metric(t, "bank_connections_refused_total", map[string]string{"reason": reason})
		return v
	}
	handshaking := func() float64 {
		v, _ := r.metric(t, "bank_connections_handshaking", nil)
		return v
	}
	var flood []net.Conn
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	dial := func(ip string) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		if c, err := d.Dial("tcp", r.addr); err == nil {
			flood = append(flood, c)
		}
	}
	for range 3 {
		dial("127.0.0.5")
	}
	waitFor(t, "the per-source handshaking cap", func() bool {
		return refused("handshaking_per_source") == 1 && handshaking() == 2
	})
	dial("127.0.0.6")
	dial("127.0.0.7") // 127.0.0.5 holds 2, 127.0.0.7 none: 127.0.0.5's oldest makes room
	waitFor(t, "the total handshaking cap", func() bool { return refused("handshaking") == 1 && handshaking() == 3 })
	if _, err := call(cc); err != nil {
		t.Errorf("the authenticated client during the flood: %v", err)
	}
}
