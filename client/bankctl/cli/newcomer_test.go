package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/accounts"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/whoami"
)

// startRealAccounts serves the real accounts service (internal/accounts on a SQLite
// ledger in a temporary file) the way startBank serves the double: bank TLS, testPolicy.
func startRealAccounts(tb testing.TB, f *fixtures) string {
	tb.Helper()
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(tb.TempDir(), "ledger.db"))
	if err != nil {
		tb.Fatal(err)
	}
	l, err := ledger.New(store)
	if err != nil {
		tb.Fatal(err)
	}
	src, err := tlsconfig.NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), f.server.TLSCertificate(), f.bundle, tlsconfig.WithCRL(f.crl))
	if err != nil {
		tb.Fatal(err)
	}
	policy, err := authz.ParsePolicy("test-policy.yaml", []byte(testPolicy))
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := grpcserver.New(src, policy, nil)
	if err != nil {
		tb.Fatal(err)
	}
	identityv1.RegisterIdentityServiceServer(srv, whoami.New())
	accounts.NewService(l, nil).Register(srv)
	return serve(tb, func(lis net.Listener) error { return srv.Serve(lis) }, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		_ = l.Close()
		_ = store.Close()
	})
}

// TestAmountMustBePositive checks that zero and negative amounts are refused before
// dialing: the server here would accept them (the double credits whatever it is sent), so
// exit code 2 means nothing was sent.
func TestAmountMustBePositive(t *testing.T) {
	f := newFixtures(t)
	env := map[string]string{"BANK_CERTS_DIR": f.dir, "BANK_ADDR": startBank(t, f)}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "deposit zero", args: []string{"--as", "teller", "accounts", "deposit", "--account-id", aliceAccount, "--amount", "0"}, want: "greater than zero"},
		{name: "deposit zero with decimals", args: []string{"--as", "teller", "accounts", "deposit", "--account-id", aliceAccount, "--amount", "0.00"}, want: "greater than zero"},
		{name: "deposit negative", args: []string{"--as", "teller", "accounts", "deposit", "--account-id", aliceAccount, "--amount", "-5"}, want: `--amount "-5"`},
		{name: "withdraw zero", args: []string{"--as", "teller", "accounts", "withdraw", "--account-id", aliceAccount, "--amount", "0"}, want: "greater than zero"},
		{name: "payment zero", args: []string{"--as", "alice", "payments", "create", "--from-account-id", aliceAccount, "--to-account-id", "acc_00000000000000000000000b0b", "--amount", "0"}, want: "greater than zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, env, tt.args...)
			if r.code != ExitUsage {
				t.Errorf("exit code %d, want %d (refused locally)\nstdout: %s\nstderr: %s", r.code, ExitUsage, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, r.stderr)
			}
			if strings.Contains(r.stderr, "idempotency key") {
				t.Errorf("a key was generated for a request never sent:\n%s", r.stderr)
			}
		})
	}
	// The control: a positive amount does reach the server.
	mustSucceed(t, runCLI(t, env, "--as", "teller", "accounts", "deposit", "--account-id", aliceAccount, "--amount", "0.01"))
}

// TestUnresolvableHost tells a host that does not resolve from a server that is down.
func TestUnresolvableHost(t *testing.T) {
	f := newFixtures(t)
	tests := []struct {
		name     string
		addr     string
		wantKind Kind
		want     string
	}{
		// .invalid never resolves (RFC 2606).
		{name: "unknown host", addr: "no-such-bank.invalid:50051", wantKind: KindUnresolvable, want: `cannot resolve host "no-such-bank.invalid"`},
		{name: "nothing listening", addr: closedAddr(t), wantKind: KindUnreachable, want: "nothing accepts connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, map[string]string{"BANK_CERTS_DIR": f.dir}, "--as", "alice", "--addr", tt.addr, "--timeout", "5s", "--output", "json", "whoami")
			if r.code != ExitTransport {
				t.Errorf("exit code %d, want %d\n%s", r.code, ExitTransport, r.stderr)
			}
			e := jsonError(t, r)
			if e.Error.Kind != tt.wantKind || !strings.Contains(e.Error.Diagnosis, tt.want) {
				t.Errorf("kind %q diagnosis %q, want %q saying %q", e.Error.Kind, e.Error.Diagnosis, tt.wantKind, tt.want)
			}
		})
	}
}

// TestFieldErrorsNameFlags calls the real accounts service with bad fields and checks that
// the diagnosis names the bankctl flag, not the proto field path.
func TestFieldErrorsNameFlags(t *testing.T) {
	f := newFixtures(t)
	env := map[string]string{"BANK_CERTS_DIR": f.dir, "BANK_ADDR": startRealAccounts(t, f)}
	tests := []struct {
		name      string
		args      []string
		wantFlag  string
		protoPath string
	}{
		{name: "transfer source", args: []string{"accounts", "transfer", "--from-account-id", "nope", "--to-account-id", "acc_x", "--amount", "1"},
			wantFlag: "--from-account-id", protoPath: "invalid: from_account_id"},
		{name: "deposit account", args: []string{"accounts", "deposit", "--account-id", "nope", "--amount", "1"},
			wantFlag: "--account-id", protoPath: "invalid: account_id"},
		{name: "get id", args: []string{"accounts", "get", "--id", "nope"}, wantFlag: "--id", protoPath: "invalid: id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, env, append([]string{"--as", "teller", "--output", "json"}, tt.args...)...)
			if r.code != ExitFailure {
				t.Fatalf("exit code %d, want %d\n%s", r.code, ExitFailure, r.stderr)
			}
			e := jsonError(t, r)
			if e.Error.Code != "InvalidArgument" {
				t.Fatalf("code %s, want InvalidArgument: %s", e.Error.Code, e.Error.Message)
			}
			if !strings.Contains(e.Error.Diagnosis, tt.wantFlag+": ") || strings.Contains(e.Error.Diagnosis, tt.protoPath) {
				t.Errorf("diagnosis %q, want it to name %s and not %s", e.Error.Diagnosis, tt.wantFlag, tt.protoPath)
			}
		})
	}
}

// TestRenameFields covers messages without BadRequest details (the payments service's).
func TestRenameFields(t *testing.T) {
	flags := map[string]bool{"from-account-id": true, "to-account-id": true, "amount": true, "currency": true, "memo": true, "idempotency-key": true}
	flagFor := func(path string) string {
		name := path
		switch {
		case path == "amount.currency_code":
			name = "currency"
		case strings.HasPrefix(path, "amount."):
			name = "amount"
		}
		name = strings.ReplaceAll(name, "_", "-")
		if flags[name] {
			return "--" + name
		}
		return ""
	}
	tests := []struct{ in, want string }{
		{"to_account_id must differ from from_account_id (no self-payments)", "--to-account-id must differ from --from-account-id (no self-payments)"},
		{`amount.currency_code "XYZ" is not an active ISO 4217 currency`, `--currency "XYZ" is not an active ISO 4217 currency`},
		{"amount.minor_units must be greater than zero", "--amount must be greater than zero"},
		{"memo must be valid UTF-8 of at most 200 characters", "--memo must be valid UTF-8 of at most 200 characters"},
		{`from_account_id "to_account_id" is not an account id`, `--from-account-id "to_account_id" is not an account id`},
		{"page_token is malformed", "page_token is malformed"}, // no such flag on this command
		{"amount is required", "--amount is required"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := renameFields(tt.in, flagFor); got != tt.want {
				t.Errorf("renameFields = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCertificateAdvice checks that 'make certs' is advised only when the dev PKI is
// missing, and that every message names the absolute path bankctl looked at.
func TestCertificateAdvice(t *testing.T) {
	f := newFixtures(t)
	broken := t.TempDir()
	writeFile(t, filepath.Join(broken, "ca.crt"), []byte("not PEM\n"))
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "alice.crt"), []byte("not PEM\n"))
	writeFile(t, filepath.Join(other, "alice.key"), []byte("not PEM\n"))
	caPEM, err := os.ReadFile(filepath.Join(f.dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(other, "ca.crt"), caPEM)
	elsewhere := t.TempDir()
	tests := []struct {
		name      string
		chdir     string
		args      []string
		want      []string
		makeCerts bool
	}{
		{name: "no dev PKI, run from another directory", chdir: elsewhere, args: []string{"--as", "alice", "whoami"},
			want: []string{"no dev PKI in " + filepath.Join(elsewhere, "certs", "dev")}, makeCerts: true},
		{name: "no dev PKI in --certs-dir", args: []string{"--certs-dir", filepath.Join(elsewhere, "nothing"), "--as", "alice", "whoami"},
			want: []string{"no dev PKI in " + filepath.Join(elsewhere, "nothing")}, makeCerts: true},
		{name: "unknown identity in an existing PKI", args: []string{"--certs-dir", f.dir, "--as", "nobody", "whoami"},
			want: []string{"--as nobody: no client certificate nobody.crt in " + f.dir, "alice, ", "teller"}},
		{name: "broken CA bundle", args: []string{"--certs-dir", broken, "--as", "alice", "whoami"},
			want: []string{"cannot use the CA bundle " + filepath.Join(broken, "ca.crt")}},
		{name: "missing --ca", args: []string{"--certs-dir", f.dir, "--ca", filepath.Join(elsewhere, "ca.pem"), "--as", "alice", "whoami"},
			want: []string{"--ca " + filepath.Join(elsewhere, "ca.pem") + ": no such file"}},
		{name: "broken certificate", args: []string{"--certs-dir", other, "--as", "alice", "whoami"},
			want: []string{filepath.Join(other, "alice.crt") + " is not a PEM certificate chain"}},
		{name: "missing --cert", args: []string{"--certs-dir", f.dir, "--cert", filepath.Join(elsewhere, "me.crt"), "--key", filepath.Join(elsewhere, "me.key"), "whoami"},
			want: []string{filepath.Join(elsewhere, "me.crt") + " does not exist; check --cert/--key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.chdir != "" {
				t.Chdir(tt.chdir)
			}
			r := runCLI(t, map[string]string{"BANK_ADDR": closedAddr(t)}, tt.args...)
			if r.code != ExitUsage {
				t.Errorf("exit code %d, want %d\n%s", r.code, ExitUsage, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if got := strings.Contains(r.stderr, "make certs"); got != tt.makeCerts {
				t.Errorf("advises make certs: %v, want %v:\n%s", got, tt.makeCerts, r.stderr)
			}
		})
	}
}
