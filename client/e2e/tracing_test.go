package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tracesink"
)

// traceWait bounds every wait of the tracing test on a condition; generous, for two
// shared cores.
const traceWait = 60 * time.Second

const (
	otelgrpcCreatePayment = "bank.payments.v1.PaymentsService/CreatePayment"
	otelgrpcTransfer      = "bank.accounts.v1.AccountsService/Transfer"
	otelgrpcOpenAccount   = "bank.accounts.v1.AccountsService/OpenAccount"
)

// TestTraceAcrossProcesses runs accounts, payments and bankctl as processes, each exporting
// its spans over OTLP/gRPC to a receiver of the test, and follows one payment: bankctl's
// client span, payments' server span, payments' client span to accounts and accounts'
// server span form one trace, parent to child; the services' log and audit records of that
// call carry its trace id. A call that accounts denies is a span carrying its code. Accounts
// exports only when it stops (a batch delay longer than the test), so its spans also prove
// that SIGTERM flushes.
func TestTraceAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service binaries")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	root, tmp := repoRoot(t), t.TempDir()
	bin := filepath.Join(tmp, "bin")
	run(ctx, t, root, nil, "go", "build", "-o", bin+string(filepath.Separator),
		"./services/accounts", "./services/payments", "./client/bankctl")

	p := pkitest.New(t)
	ca, crl := p.WriteBundle(t), p.WriteCRL(t, p.CRL(t))
	cert := func(name, id string, server bool) []string {
		leaf := p.Client(t, id)
		if server {
			leaf = p.Server(t, id)
		}
		c, k := p.WriteLeaf(t, name, leaf)
		return []string{"--cert", c, "--key", k, "--ca", ca}
	}
	sink, err := tracesink.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sink.Stop(); err != nil {
			t.Error(err)
		}
	})
	otlp := "OTEL_EXPORTER_OTLP_ENDPOINT=" + sink.Endpoint()

	ports := freePorts(t, 4)
	accountsAddr, paymentsAddr := "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1]
	common := func(name, listen, metrics string) []string {
		return []string{"--listen", listen, "--metrics-listen", "127.0.0.1:" + metrics,
			"--db", filepath.Join(tmp, name+".db"), "--crl", crl, "--intermediates", ""}
	}
	accounts := startTraced(t, "accounts", filepath.Join(bin, "accounts"),
		append(common("accounts", accountsAddr, ports[2]), cert("accounts", "spiffe://bank.local/service/accounts", true)...),
		otlp, "OTEL_BSP_SCHEDULE_DELAY=600000") // flushed at SIGTERM only
	payments := startTraced(t, "payments", filepath.Join(bin, "payments"),
		append(append(common("payments", paymentsAddr, ports[3]), cert("payments", "spiffe://bank.local/service/payments", true)...),
			"--accounts-addr", accountsAddr, "--accounts-server-name", "localhost"),
		otlp, "OTEL_BSP_SCHEDULE_DELAY=50")
	waitReady(ctx, t, "127.0.0.1:"+ports[2], accounts)
	waitReady(ctx, t, "127.0.0.1:"+ports[3], payments)

	// bankctl as a person runs it, with OTEL_SERVICE_NAME naming it.
	idFlags := map[string][]string{
		"teller": cert("teller", "spiffe://bank.local/teller/tina", false),
		"alice":  cert("alice", "spiffe://bank.local/customer/alice", false),
	}
	bankctl := func(as string, wantExit int, args ...string) string {
		t.Helper()
		full := append([]string{"--accounts-addr", accountsAddr, "--payments-addr", paymentsAddr,
			"--server-name", "localhost", "--crl", crl, "--output", "json"}, idFlags[as]...)
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "bankctl"), append(full, args...)...)
		cmd.Env = append(withoutEnv(os.Environ(), "BANK_", "OTEL_"), otlp, "OTEL_SERVICE_NAME=bankctl-e2e")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil && wantExit == 0:
		case errors.As(err, &exit) && exit.ExitCode() == wantExit:
		default:
			t.Fatalf("bankctl %s: %v, want exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantExit, &stdout, &stderr)
		}
		return stdout.String()
	}
	open := func(owner string) string {
		var resp struct{ Account struct{ ID string } }
		out := bankctl("teller", 0, "accounts", "open", "--owner", owner, "--currency", "EUR")
		if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Account.ID == "" {
			t.Fatalf("accounts open: %v\n%s", err, out)
		}
		return resp.Account.ID
	}
	from, to := open("spiffe://bank.local/customer/alice"), open("spiffe://bank.local/customer/bob")
	bankctl("teller", 0, "accounts", "deposit", "--account-id", from, "--amount", "100.00", "--idempotency-key", "fund-1")
	var paid struct{ Payment struct{ ID, Status string } }
	out := bankctl("alice", 0, "payments", "create", "--from-account-id", from, "--to-account-id", to,
		"--amount", "5.00", "--idempotency-key", "trace-pay-1")
	if err := json.Unmarshal([]byte(out), &paid); err != nil || paid.Payment.Status != "PAYMENT_STATUS_COMPLETED" {
		t.Fatalf("payments create: %v\n%s", err, out)
	}
	bankctl("alice", 4, "accounts", "open", "--owner", "spiffe://bank.local/customer/alice", "--currency", "EUR")

	payments.terminate(t)
	accounts.terminate(t)

	// The payment: four spans, one trace, each the parent of the next.
	wctx, wcancel := context.WithTimeout(ctx, traceWait)
	defer wcancel()
	spans, err := sink.Wait(wctx, func(s []tracesink.Span) bool {
		_, ok := findSpan(s, "accounts", "server", otelgrpcTransfer, "")
		_, denied := findSpan(s, "accounts", "server", otelgrpcOpenAccount, "PERMISSION_DENIED")
		return ok && denied
	})
	if err != nil {
		t.Fatalf("%v\nspans: %+v", err, spans)
	}
	chain := []struct{ service, kind, name string }{
		{"bankctl-e2e", "client", otelgrpcCreatePayment},
		{"payments", "server", otelgrpcCreatePayment},
		{"payments", "client", otelgrpcTransfer},
		{"accounts", "server", otelgrpcTransfer},
	}
	var hops []tracesink.Span
	for _, c := range chain {
		s, ok := findSpan(spans, c.service, c.kind, c.name, "OK")
		if !ok {
			t.Fatalf("no OK %s span %s of service %s among %+v", c.kind, c.name, c.service, spans)
		}
		if len(hops) > 0 {
			parent := hops[len(hops)-1]
			if s.TraceID != parent.TraceID || s.ParentSpanID != parent.SpanID {
				t.Errorf("%s %s span (trace %s, parent %s) is not the child of the %s %s span (trace %s, span %s)",
					c.service, c.kind, s.TraceID, s.ParentSpanID, parent.Service, parent.Kind, parent.TraceID, parent.SpanID)
			}
		} else if s.ParentSpanID != "" {
			t.Errorf("bankctl's span has a parent %s: want the root of the trace", s.ParentSpanID)
		}
		hops = append(hops, s)
	}
	traceID := hops[0].TraceID

	// Every log record of the payment's calls, the audit records included, names its trace,
	// and the audit record names the server span it was written in.
	checkLogs(t, "payments", payments.out.String(), traceID, hops[1].SpanID,
		"/bank.payments.v1.PaymentsService/CreatePayment", []string{"payment=" + paid.Payment.ID, "grpc.method=CreatePayment"},
		[]string{`msg="payment recorded"`, `msg="payment finished"`, `msg="finished call"`})
	checkLogs(t, "accounts", accounts.out.String(), traceID, hops[3].SpanID,
		"/bank.accounts.v1.AccountsService/Transfer", []string{"grpc.method=Transfer"}, []string{`msg="finished call"`})

	// The denied call: accounts' server span carries the code (its status stays unset: a
	// refusal is the client's error), bankctl's client span is an error, and the audit
	// record of the denial names the trace.
	denied, _ := findSpan(spans, "accounts", "server", otelgrpcOpenAccount, "PERMISSION_DENIED")
	if denied.StatusCode != "unset" {
		t.Errorf("the denied call's server span status is %s, want unset", denied.StatusCode)
	}
	client, ok := findSpan(spans, "bankctl-e2e", "client", otelgrpcOpenAccount, "PERMISSION_DENIED")
	if !ok || client.StatusCode != "error" || client.TraceID != denied.TraceID || denied.ParentSpanID != client.SpanID {
		t.Errorf("bankctl's span of the denied call %+v is not an error parent of accounts' span %+v", client, denied)
	}
	checkLogs(t, "accounts", accounts.out.String(), denied.TraceID, denied.SpanID,
		"/bank.accounts.v1.AccountsService/OpenAccount", nil, nil)
	if !strings.Contains(grepLines(accounts.out.String(), "trace_id="+denied.TraceID), "decision=deny") {
		t.Errorf("accounts' audit record of the denial lacks trace_id=%s", denied.TraceID)
	}
}

// findSpan returns the span of service, kind and name whose rpc.response.status_code is
// code (any code if empty).
func findSpan(spans []tracesink.Span, service, kind, name, code string) (tracesink.Span, bool) {
	for _, s := range spans {
		if s.Service == service && s.Kind == kind && s.Name == name && (code == "" || s.Attributes["rpc.response.status_code"] == code) {
			return s, true
		}
	}
	return tracesink.Span{}, false
}

// checkLogs checks the log of a service: the audit record of method carries trace_id and
// span_id; every line mentioning one of markers (the call's other records) carries the
// trace id; and each of want is among them.
func checkLogs(t *testing.T, service, log, traceID, spanID, method string, markers, want []string) {
	t.Helper()
	audit := grepLines(log, "audit=true", "method="+method)
	if !strings.Contains(audit, "trace_id="+traceID+" span_id="+spanID) {
		t.Errorf("%s: the audit record of %s lacks trace_id=%s span_id=%s:\n%s", service, method, traceID, spanID, audit)
	}
	var ours []string
	for _, m := range markers {
		for line := range strings.Lines(grepLines(log, m)) {
			if !strings.Contains(line, "trace_id="+traceID) {
				t.Errorf("%s: a record of the traced call lacks trace_id=%s: %s", service, traceID, line)
			}
			ours = append(ours, line)
		}
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(ours, ""), w) {
			t.Errorf("%s: no record %s of the traced call among:\n%s", service, w, strings.Join(ours, ""))
		}
	}
}

// grepLines returns the lines of text holding every one of subs.
func grepLines(text string, subs ...string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			b.WriteString(line)
		}
	}
	return b.String()
}

// withoutEnv drops the variables of the developer's shell with one of prefixes.
func withoutEnv(env []string, prefixes ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, p := range prefixes {
			keep = keep && !strings.HasPrefix(kv, p)
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// tracedProcess is a service binary running for the tracing test.
type tracedProcess struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error // Wait's, once done is closed
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

// startTraced starts bin with args and env (on top of the test's environment less BANK_*
// and OTEL_*); cleanup kills it if it still runs, and prints its log if the test failed.
func startTraced(tb testing.TB, name, bin string, args []string, env ...string) *tracedProcess {
	tb.Helper()
	p := &tracedProcess{name: name, cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(withoutEnv(os.Environ(), "BANK_", "OTEL_"), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if tb.Failed() {
			tb.Logf("log of %s:\n%s", name, p.out)
		}
	})
	return p
}

// terminate sends SIGTERM and waits for a clean exit.
func (p *tracedProcess) terminate(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(traceWait):
		tb.Fatalf("%s did not exit within %s of SIGTERM", p.name, traceWait)
	}
	if p.err != nil {
		tb.Fatalf("%s after SIGTERM: %v, want a clean exit", p.name, p.err)
	}
}

// waitReady polls the /readyz of a service until it answers 200.
func waitReady(ctx context.Context, tb testing.TB, metricsAddr string, p *tracedProcess) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, traceWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("/readyz: %s", resp.Status)
		}
		last = err
		select {
		case <-p.done:
			tb.Fatalf("%s exited before it was ready: %v", p.name, p.err)
		case <-ctx.Done():
			tb.Fatalf("%s not ready: %v", p.name, last)
		case <-tick.C:
		}
	}
}
