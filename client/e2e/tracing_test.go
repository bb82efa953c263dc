package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/tracesink"
)

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
	bin := binaries(ctx, t, repoRoot(t))
	dir := filepath.Join(t.TempDir(), "services")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(dir, "certs")
	run(ctx, t, dir, nil, filepath.Join(bin, "certgen"), "--dir", certs)
	sink, err := tracesink.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sink.Stop(); err != nil {
			t.Error(err)
		}
	})

	// The processes inherit the test's environment: every one exports to the sink, and
	// nothing of the developer's shell changes how.
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_SERVICE_NAME",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.Endpoint())
	ports := freePorts(t, 4)
	accountsAddr, paymentsAddr := "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1]
	common := func(name, listen, metrics string) []string {
		return []string{
			"--listen", listen, "--metrics-listen", "127.0.0.1:" + metrics, "--db", filepath.Join(dir, name+".db"),
			"--cert", filepath.Join(certs, name+".crt"), "--key", filepath.Join(certs, name+".key"),
			"--ca", filepath.Join(certs, "ca.crt"), "--intermediates", filepath.Join(certs, "intermediates.crt"),
			"--crl", filepath.Join(certs, "crl.pem"), "--audit-key", filepath.Join(certs, name+"-audit.key"),
		}
	}
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "600000") // accounts exports when it stops, not before
	accounts := startProcess(t, filepath.Join(bin, "accounts"), common("accounts", accountsAddr, ports[2])...)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	payments := startProcess(t, filepath.Join(bin, "payments"),
		append(common("payments", paymentsAddr, ports[3]), "--accounts-addr", accountsAddr)...)
	waitReady(t, "http://127.0.0.1:"+ports[3]+"/readyz", accounts, payments) // payments is ready once accounts answers

	// bankctl as a person runs it, with OTEL_SERVICE_NAME naming it.
	bankctl := func(as string, wantExit int, args ...string) string {
		t.Helper()
		full := append([]string{"--accounts-addr", accountsAddr, "--payments-addr", paymentsAddr,
			"--certs-dir", certs, "--as", as, "--output", "json"}, args...)
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "bankctl"), full...)
		cmd.Env = append(os.Environ(), "OTEL_SERVICE_NAME=bankctl-e2e")
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

	terminate(t, payments)
	terminate(t, accounts)

	// The payment: four spans, one trace, each the parent of the next.
	wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
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
	checkLogs(t, "payments", payments.out.String(), filepath.Join(dir, "payments.audit.jsonl"), traceID, hops[1].SpanID,
		"/bank.payments.v1.PaymentsService/CreatePayment", []string{"payment=" + paid.Payment.ID, "grpc.method=CreatePayment"},
		[]string{`msg="payment recorded"`, `msg="payment finished"`})
	checkLogs(t, "accounts", accounts.out.String(), filepath.Join(dir, "accounts.audit.jsonl"), traceID, hops[3].SpanID,
		"/bank.accounts.v1.AccountsService/Transfer", []string{"grpc.method=Transfer"}, nil)
	// A call that ended OK has its audit record and no call log record.
	for name, p := range map[string]*process{"payments": payments, "accounts": accounts} {
		if lines := grepLines(p.out.String(), `msg="finished call"`, "trace_id="+traceID); lines != "" {
			t.Errorf("%s wrote call records for the calls of a payment that succeeded:\n%s", name, lines)
		}
	}

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
	checkLogs(t, "accounts", accounts.out.String(), filepath.Join(dir, "accounts.audit.jsonl"), denied.TraceID, denied.SpanID,
		"/bank.accounts.v1.AccountsService/OpenAccount", []string{"grpc.method=OpenAccount"}, []string{`msg="finished call"`})
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

// checkLogs checks the records of a service: the audit record of method in its audit
// trail carries trace_id and span_id; every log line mentioning one of markers (the
// call's other records) carries the trace id; and each of want is among them.
func checkLogs(t *testing.T, service, log, auditFile, traceID, spanID, method string, markers, want []string) {
	t.Helper()
	trail, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatalf("%s: %v", service, err)
	}
	var methods []string
	found := false
	for line := range strings.Lines(string(trail)) {
		rec, err := auditlog.ParseLine([]byte(strings.TrimSuffix(line, "\n")))
		if err != nil {
			t.Fatalf("%s: audit trail %s: %v", service, auditFile, err)
		}
		if rec.Method == method {
			methods = append(methods, rec.TraceID+"/"+rec.SpanID)
			found = found || (rec.TraceID == traceID && rec.SpanID == spanID)
		}
	}
	if !found {
		t.Errorf("%s: no audit record of %s with trace_id=%s span_id=%s; those of %s name %v", service, method, traceID, spanID, method, methods)
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

// terminate sends SIGTERM and waits for a clean exit (startProcess's cleanup then has
// nothing left to stop); p.out may be read afterwards.
func terminate(tb testing.TB, p *process) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM %s: %v", p.cmd.Path, err)
	}
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		tb.Fatalf("%s did not exit within %s of SIGTERM", p.cmd.Path, waitTimeout)
	}
	if p.err != nil {
		tb.Fatalf("%s after SIGTERM: %v, want a clean exit", p.cmd.Path, p.err)
	}
}
