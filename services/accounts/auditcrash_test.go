package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/tlsconfig"
)

// TestAuditTrailSurvivesSIGKILL runs the real accounts binary, kills it with SIGKILL
// right after its last answer, and checks the audit trail it leaves: the record of
// every answered denial and money-moving call is there, the chain is intact up to the
// last record, and after a restart the service appends to the same chain, which
// `bankctl audit verify` accepts. (The page cache survives a killed process: that the
// answer waited for the fsync itself is TestAnswerWaitsForAuditFsync in grpcserver.)
func TestAuditTrailSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the accounts and bankctl binaries")
	}
	bin := t.TempDir()
	for _, name := range []string{"accounts", "bankctl"} {
		pkg := "mtlsbank/services/accounts"
		if name == "bankctl" {
			pkg = "mtlsbank/client/bankctl"
		}
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	f := newFixture(t)
	addr := freeLoopbackAddr(t)
	args := []string{"--listen", addr, "--metrics-listen", "127.0.0.1:0", "--db", f.cfg.DB,
		"--cert", f.cfg.Cert, "--key", f.cfg.Key, "--ca", f.cfg.CA, "--crl", f.cfg.CRL,
		"--audit-key", f.cfg.AuditKey, "--audit-file", f.cfg.AuditFile, "--rate-limit", "0"}

	// First run: money moves, denials, reads; SIGKILL right after the last answer.
	proc := startAccounts(t, filepath.Join(bin, "accounts"), args)
	teller, intern, alice := f.dialAddr(t, addr, tellerID), f.dialAddr(t, addr, internID), f.dialAddr(t, addr, aliceID)
	waitServing(t, teller)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opened, err := accountsv1.NewAccountsServiceClient(teller).OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: aliceID, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	id := opened.GetAccount().GetId()
	const rounds = 10
	var deposits, denials, reads int
	for i := range rounds {
		if _, err := accountsv1.NewAccountsServiceClient(teller).Deposit(ctx, deposit(id, fmt.Sprintf("k%d", i))); err != nil {
			t.Fatal(err)
		}
		deposits++
		if _, err := accountsv1.NewAccountsServiceClient(teller).GetAccount(ctx, &accountsv1.GetAccountRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
		reads++
		for _, cc := range []*grpc.ClientConn{intern, alice} { // neither may deposit
			_, err := accountsv1.NewAccountsServiceClient(cc).Deposit(ctx, deposit(id, fmt.Sprintf("d%d", i)))
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("deposit by a customer or an intern: %v", err)
			}
			denials++
		}
	}
	proc.kill(t)

	recs := readTrail(t, f.cfg.AuditFile)
	count := func(method, decision, code string) int {
		n := 0
		for _, r := range recs {
			if strings.HasSuffix(r.Method, "/"+method) && r.Decision == decision && r.Code == code {
				n++
			}
		}
		return n
	}
	if got := count("Deposit", "allow", "OK"); got != deposits {
		t.Errorf("%d deposit records after SIGKILL, want every answered one: %d", got, deposits)
	}
	if got := count("OpenAccount", "allow", "OK"); got != 1 {
		t.Errorf("%d OpenAccount records, want 1", got)
	}
	if got := count("Deposit", "deny", "PermissionDenied"); got != denials {
		t.Errorf("%d denial records after SIGKILL, want every answered one: %d", got, denials)
	}
	t.Logf("after SIGKILL: %d of %d answered reads recorded (reads may lose up to the flush window)", count("GetAccount", "allow", "OK"), reads)
	pubPath := strings.TrimSuffix(f.cfg.AuditKey, ".key") + ".pub"
	if rep := verifyTrail(t, f.cfg.AuditFile, pubPath); rep.Break != nil {
		t.Fatalf("chain broken after SIGKILL: %v", rep.Break)
	}

	// Second run on the same trail: it appends, the chain goes on, and a graceful stop
	// signs a last checkpoint that bankctl verifies.
	proc = startAccounts(t, filepath.Join(bin, "accounts"), args)
	teller = f.dialAddr(t, addr, tellerID)
	waitServing(t, teller)
	for i := range 3 {
		if _, err := accountsv1.NewAccountsServiceClient(teller).Deposit(ctx, deposit(id, fmt.Sprintf("after%d", i))); err != nil {
			t.Fatal(err)
		}
		deposits++
	}
	proc.terminate(t)
	recs = readTrail(t, f.cfg.AuditFile)
	if got := count("Deposit", "allow", "OK"); got != deposits {
		t.Errorf("%d deposit records after the restart, want %d", got, deposits)
	}
	out, err := exec.Command(filepath.Join(bin, "bankctl"), "--certs-dir", filepath.Dir(pubPath), "audit", "verify", f.cfg.AuditFile).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "OK  accounts:") || !strings.Contains(string(out), "nothing cut off") {
		t.Fatalf("bankctl audit verify: %v\n%s", err, out)
	}
}

func deposit(id, key string) *accountsv1.DepositRequest {
	return &accountsv1.DepositRequest{AccountId: id, IdempotencyKey: key, Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 100}}
}

const (
	tellerID = "spiffe://bank.local/teller/tina"
	internID = "spiffe://bank.local/intern/ivan"
	aliceID  = "spiffe://bank.local/customer/alice"
)

// dialAddr connects to the accounts service at addr as spiffeID, over mutual TLS.
func (f fixture) dialAddr(tb testing.TB, addr, spiffeID string) *grpc.ClientConn {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, f.pki.Client(tb, spiffeID).TLSCertificate(), f.pki.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	creds := tlsconfig.ClientCredentials(src, "localhost", tlsconfig.WithServerID(spiffeid.RequireFromString("spiffe://bank.local/service/accounts")))
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// waitServing waits until the service answers WhoAmI on cc.
func waitServing(tb testing.TB, cc *grpc.ClientConn) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := identityv1.NewIdentityServiceClient(cc).WhoAmI(ctx, &identityv1.WhoAmIRequest{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the service did not answer within a minute: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeLoopbackAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// readTrail parses the call records of an audit file.
func readTrail(tb testing.TB, path string) []auditlog.Line {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var recs []auditlog.Line
	for raw := range bytes.Lines(data) {
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		l, err := auditlog.ParseLine(raw)
		if err != nil {
			tb.Fatalf("%v: %q", err, raw)
		}
		if l.Type == auditlog.TypeCall {
			recs = append(recs, l)
		}
	}
	return recs
}

// verifyTrail verifies the audit file with its checkpoint file, if there is one yet.
func verifyTrail(tb testing.TB, path, pubPath string) auditlog.Report {
	tb.Helper()
	pem, err := os.ReadFile(pubPath)
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := auditlog.ParsePublicKey(pem)
	if err != nil {
		tb.Fatal(err)
	}
	cp, err := os.ReadFile(auditlog.CheckpointPath(path))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		tb.Fatal(err)
	}
	rep, err := auditlog.Verify([]string{path}, pub, cp)
	if err != nil {
		tb.Fatal(err)
	}
	return rep
}

// accountsProcess is a running accounts binary.
type accountsProcess struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

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

func startAccounts(tb testing.TB, bin string, args []string) *accountsProcess {
	tb.Helper()
	p := &accountsProcess{cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BANK_") { // only the test's flags configure the service
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.kill(tb)
		if tb.Failed() {
			tb.Logf("accounts output:\n%s", p.out)
		}
	})
	return p
}

// kill sends SIGKILL (if the process still runs) and waits for it to exit.
func (p *accountsProcess) kill(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(tb)
}

func (p *accountsProcess) wait(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		tb.Fatal("accounts did not exit within a minute")
	}
}

// terminate stops the process with SIGTERM and checks that it exits cleanly.
func (p *accountsProcess) terminate(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	p.wait(tb)
	if p.err != nil {
		tb.Fatalf("accounts after SIGTERM: %v", p.err)
	}
}
