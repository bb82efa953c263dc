package cli

import (
	"net"
	"strings"
	"testing"
)

// TestDiagnostics runs bankctl against real mutual-TLS servers and checks, for each kind
// of failure, the exit code, the kind, the gRPC code and the words of the one-line
// diagnosis that name the problem.
func TestDiagnostics(t *testing.T) {
	f := newFixtures(t)
	bank := startBank(t, f)
	plain := startPlainTLSBank(t, f)
	silent := startSilent(t)
	notTLS := startRaw(t, func(c net.Conn) { _, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) })
	closed := closedAddr(t)
	otherCA := newFixtures(t)

	tests := []struct {
		name      string
		addr      string
		args      []string
		wantExit  int
		wantKind  Kind
		wantCode  string // gRPC code name
		wantLocal bool
		wantWords []string // each must appear in the diagnosis line
	}{
		{
			name: "no client certificate", addr: bank, args: []string{"whoami"},
			wantExit: ExitTransport, wantKind: KindNoClientCert, wantCode: "Unavailable",
			wantWords: []string{"no client certificate was sent", "--as NAME"},
		},
		{
			name: "certificate of another CA", addr: bank, args: []string{"--as", "rogue", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientUntrusted, wantCode: "Unavailable",
			wantWords: []string{"does not trust the CA", "pkitest Intermediate CA"},
		},
		{
			name: "self-signed certificate", addr: bank, args: []string{"--as", "selfsigned", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientUntrusted, wantCode: "Unavailable",
			wantWords: []string{"self-signed"},
		},
		{
			name: "expired certificate, caught before dialing", addr: closed, args: []string{"--as", "expired", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientExpired, wantCode: "Unauthenticated", wantLocal: true,
			wantWords: []string{"expired on", "UTC", "bin/certgen issue expired"},
		},
		{
			name: "expired certificate, rejected by the server", addr: bank, args: []string{"--as", "expired", "--skip-local-check", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientExpired, wantCode: "Unavailable",
			wantWords: []string{"expired on"},
		},
		{
			name: "certificate not yet valid, caught before dialing", addr: closed, args: []string{"--as", "notyet", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientNotYetValid, wantCode: "Unauthenticated", wantLocal: true,
			wantWords: []string{"not valid before"},
		},
		{
			name: "certificate not yet valid, rejected by the server", addr: bank, args: []string{"--as", "notyet", "--skip-local-check", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientNotYetValid, wantCode: "Unavailable",
			wantWords: []string{"not valid before"},
		},
		{
			name: "revoked certificate", addr: bank, args: []string{"--as", "revoked", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientRevoked, wantCode: "Unavailable",
			wantWords: []string{"revoked", "crl.pem", "(serial 0ABC)"},
		},
		{
			name: "revoked certificate without a local CRL", addr: bank, args: []string{"--certs-dir", t.TempDir(), "--ca", f.dir + "/ca.crt", "--cert", f.dir + "/revoked.crt", "--key", f.dir + "/revoked.key", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientRejected, wantCode: "Unavailable",
			wantWords: []string{"may be revoked", "log"},
		},
		{
			name: "server-only certificate, caught before dialing", addr: closed, args: []string{"--as", "serveronly", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientUsage, wantCode: "Unauthenticated", wantLocal: true,
			wantWords: []string{"client authentication", "serverAuth"},
		},
		{
			name: "server-only certificate, rejected by the server", addr: bank, args: []string{"--as", "serveronly", "--skip-local-check", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientUsage, wantCode: "Unavailable",
			wantWords: []string{"client authentication"},
		},
		{
			name: "CA certificate as a client", addr: bank, args: []string{"--as", "cacert", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientIsCA, wantCode: "Unavailable",
			wantWords: []string{"CA certificate, not a leaf"},
		},
		{
			name: "certificate without a SPIFFE ID", addr: bank, args: []string{"--as", "nospiffe", "whoami"},
			wantExit: ExitTransport, wantKind: KindClientRejected, wantCode: "Unavailable",
			wantWords: []string{"0 URI SANs"},
		},
		{
			name: "key of another certificate", addr: closed, args: []string{"--as", "mismatch", "whoami"},
			wantExit: ExitTransport, wantKind: KindKeyMismatch, wantCode: "Unauthenticated", wantLocal: true,
			wantWords: []string{"private key does not belong"},
		},
		{
			name: "server certificate from a CA we do not trust", addr: bank, args: []string{"--as", "alice", "--ca", otherCA.dir + "/ca.crt", "whoami"},
			wantExit: ExitTransport, wantKind: KindServerUntrusted, wantCode: "Unavailable",
			wantWords: []string{"we do not trust the server", "--ca"},
		},
		{
			name: "server certificate for other names", addr: bank, args: []string{"--as", "alice", "--server-name", "payments.example", "whoami"},
			wantExit: ExitTransport, wantKind: KindServerName, wantCode: "Unavailable",
			wantWords: []string{"localhost", "127.0.0.1", `"payments.example"`, "--server-name"},
		},
		{
			name: "nothing listens", addr: closed, args: []string{"--as", "alice", "whoami"},
			wantExit: ExitTransport, wantKind: KindUnreachable, wantCode: "Unavailable",
			wantWords: []string{"cannot reach", closed},
		},
		{
			name: "server never answers", addr: silent, args: []string{"--as", "alice", "--timeout", "300ms", "whoami"},
			wantExit: ExitTransport, wantKind: KindTimeout, wantCode: "DeadlineExceeded",
			wantWords: []string{"no answer", "300ms"},
		},
		{
			name: "not a TLS server", addr: notTLS, args: []string{"--as", "alice", "whoami"},
			wantExit: ExitTransport, wantKind: KindHandshake, wantCode: "Unavailable",
			wantWords: []string{"does not speak TLS"},
		},
		{
			name: "no usable bank identity", addr: plain, args: []string{"--as", "otherdomain", "whoami"},
			wantExit: ExitTransport, wantKind: KindUnauthenticated, wantCode: "Unauthenticated",
			wantWords: []string{"no usable bank identity", "spiffe://other.example/customer/eve"},
		},
		{
			name: "role without the method", addr: bank, args: []string{"--as", "alice", "accounts", "open", "--owner", "spiffe://bank.local/customer/alice"},
			wantExit: ExitPermission, wantKind: KindPermissionDenied, wantCode: "PermissionDenied",
			wantWords: []string{"spiffe://bank.local/customer/alice", "(roles: customer)", "AccountsService/OpenAccount"},
		},
		{
			name: "spoofed delegation", addr: bank, args: []string{"--as", "alice", "--on-behalf-of", "spiffe://bank.local/customer/bob", "accounts", "get", "--id", "acc_00000000000000000000000001"},
			wantExit: ExitPermission, wantKind: KindPermissionDenied, wantCode: "PermissionDenied",
			wantWords: []string{"spiffe://bank.local/customer/alice", "x-bank-on-behalf-of", "AccountsService/GetAccount"},
		},
		{
			name: "allowed call the service refuses", addr: bank, args: []string{"--as", "teller", "accounts", "get", "--id", "acc_00000000000000000000000001"},
			wantExit: ExitFailure, wantKind: KindRequest, wantCode: "NotFound",
			wantWords: []string{"found nothing", `"acc_00000000000000000000000001" not found`, "AccountsService/GetAccount"},
		},
		{
			name: "method the server does not serve", addr: bank, args: []string{"--as", "teller", "accounts", "withdraw", "--account-id", "acc_00000000000000000000000001", "--amount", "1"},
			wantExit: ExitFailure, wantKind: KindRequest, wantCode: "Unimplemented",
			wantWords: []string{"does not serve", "AccountsService/Withdraw"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"BANK_CERTS_DIR": f.dir, "BANK_ADDR": tc.addr}
			r := runCLI(t, env, append([]string{"--output", "json"}, tc.args...)...)
			if r.code != tc.wantExit {
				t.Errorf("exit code = %d, want %d\nstderr: %s", r.code, tc.wantExit, r.stderr)
			}
			e := jsonError(t, r).Error
			if e.Kind != tc.wantKind {
				t.Errorf("kind = %q, want %q\ndiagnosis: %s\nstatus: %s: %s", e.Kind, tc.wantKind, e.Diagnosis, e.Code, e.Message)
			}
			if e.Code != tc.wantCode {
				t.Errorf("code = %q, want %q", e.Code, tc.wantCode)
			}
			if e.Local != tc.wantLocal {
				t.Errorf("local = %v, want %v", e.Local, tc.wantLocal)
			}
			if e.ExitCode != r.code {
				t.Errorf("exit_code in JSON = %d, process exit code %d", e.ExitCode, r.code)
			}
			for _, w := range tc.wantWords {
				if !strings.Contains(e.Diagnosis, w) {
					t.Errorf("diagnosis lacks %q:\n%s", w, e.Diagnosis)
				}
			}
			if strings.Contains(e.Diagnosis, "\n") {
				t.Errorf("diagnosis is not one line:\n%s", e.Diagnosis)
			}
		})
	}
}

// TestDiagnosticsText checks the text form: one line of diagnosis, then the raw status.
func TestDiagnosticsText(t *testing.T) {
	f := newFixtures(t)
	bank := startBank(t, f)
	tests := []struct {
		name       string
		args       []string
		wantLines  []string // prefixes of the stderr lines, in order
		wantStatus string
	}{
		{
			name:       "handshake rejection",
			args:       []string{"--as", "rogue", "whoami"},
			wantLines:  []string{"bankctl: the accounts service does not trust the CA", "grpc status: Unavailable: "},
			wantStatus: "remote error: tls: unknown certificate authority",
		},
		{
			name:       "local check",
			args:       []string{"--as", "expired", "whoami"},
			wantLines:  []string{"bankctl: our certificate ", "grpc status: Unauthenticated: certificate expired (local check: nothing was sent)"},
			wantStatus: "local check",
		},
		{
			name:       "permission denied",
			args:       []string{"--as", "alice", "accounts", "deposit", "--account-id", "acc_00000000000000000000000001", "--amount", "1.00", "--idempotency-key", "k1"},
			wantLines:  []string{"bankctl: permission denied: the accounts service knows you as spiffe://bank.local/customer/alice", "grpc status: PermissionDenied: "},
			wantStatus: "permission denied",
		},
		{
			name:       "insufficient funds, from the reason",
			args:       []string{"--as", "teller", "accounts", "withdraw", "--account-id", poorAccount, "--amount", "1.00", "--idempotency-key", "k2"},
			wantLines:  []string{"bankctl: AccountsService/Withdraw refused: the account to debit does not hold enough money", "grpc status: FailedPrecondition: "},
			wantStatus: "(reason INSUFFICIENT_FUNDS)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, map[string]string{"BANK_CERTS_DIR": f.dir, "BANK_ADDR": bank}, tc.args...)
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if len(lines) != len(tc.wantLines) {
				t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(tc.wantLines), r.stderr)
			}
			for i, want := range tc.wantLines {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], want)
				}
			}
			if !strings.Contains(lines[len(lines)-1], tc.wantStatus) {
				t.Errorf("status line %q lacks %q", lines[len(lines)-1], tc.wantStatus)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing on failure", r.stdout)
			}
		})
	}
}
