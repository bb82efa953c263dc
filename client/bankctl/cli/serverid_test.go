package cli

import (
	"net"
	"strings"
	"testing"

	"mtlsbank/internal/pki"
)

const (
	accountsSPIFFEID = "spiffe://bank.local/service/accounts"
	paymentsSPIFFEID = "spiffe://bank.local/service/payments"
)

// TestServerIdentity runs bankctl against real mutual-TLS servers presenting bank
// certificates of the wrong service (valid chain, right names: only the SPIFFE ID is
// wrong), and checks that bankctl refuses them before sending anything, with one line
// naming the expected and the presented ID, and that --server-spiffe-id (or
// BANK_SERVER_SPIFFE_ID) says which identity to expect instead.
func TestServerIdentity(t *testing.T) {
	f := newFixtures(t)
	accounts := startBank(t, f)
	// The payments service's certificate serving on the accounts address.
	impostor := startBankAs(t, f, f.pki.Server(t, paymentsSPIFFEID))
	// A bank server certificate without any SPIFFE ID.
	anonymous := startPlainTLSBankAs(t, f, f.pki.Issue(t, pki.Request{
		CommonName: "anonymous", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: pki.ServerAuth,
	}))

	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantExit  int
		wantKind  Kind
		wantWords []string
	}{
		{name: "accounts command, payments' certificate", env: map[string]string{"BANK_ACCOUNTS_ADDR": impostor},
			args: []string{"--as", "alice", "accounts", "get", "--id", aliceAccount}, wantExit: ExitTransport, wantKind: KindServerIdentity,
			wantWords: []string{impostor, "presents " + paymentsSPIFFEID, "accounts service must present " + accountsSPIFFEID, "--server-spiffe-id"}},
		{name: "whoami against accounts, payments' certificate", env: map[string]string{"BANK_ADDR": impostor},
			args: []string{"--as", "alice", "whoami"}, wantExit: ExitTransport, wantKind: KindServerIdentity,
			wantWords: []string{"presents " + paymentsSPIFFEID, accountsSPIFFEID}},
		{name: "ledger watch, payments' certificate", env: map[string]string{"BANK_ACCOUNTS_ADDR": impostor},
			args: []string{"--as", "teller", "ledger", "watch", "--limit", "1"}, wantExit: ExitTransport, wantKind: KindServerIdentity,
			wantWords: []string{"presents " + paymentsSPIFFEID, accountsSPIFFEID}},
		{name: "payments command, accounts' certificate", env: map[string]string{"BANK_PAYMENTS_ADDR": accounts},
			args: []string{"--as", "alice", "payments", "list"}, wantExit: ExitTransport, wantKind: KindServerIdentity,
			wantWords: []string{"presents " + accountsSPIFFEID, "payments service must present " + paymentsSPIFFEID}},
		{name: "whoami against payments, accounts' certificate", env: map[string]string{"BANK_PAYMENTS_ADDR": accounts},
			args: []string{"--as", "alice", "whoami", "--service", "payments"}, wantExit: ExitTransport, wantKind: KindServerIdentity,
			wantWords: []string{"presents " + accountsSPIFFEID, paymentsSPIFFEID}},
		{name: "no client certificate: the server is refused first", env: map[string]string{"BANK_ADDR": impostor},
			args: []string{"whoami"}, wantExit: ExitTransport, wantKind: KindServerIdentity,
			wantWords: []string{"presents " + paymentsSPIFFEID, accountsSPIFFEID}},
		{name: "server certificate without a SPIFFE ID", env: map[string]string{"BANK_ADDR": anonymous},
			args: []string{"--as", "alice", "whoami"}, wantExit: ExitTransport, wantKind: KindServerIdentity,
			wantWords: []string{"no SPIFFE ID", accountsSPIFFEID}},
		{name: "override names the identity to expect", env: map[string]string{"BANK_ADDR": impostor},
			args: []string{"--as", "alice", "--server-spiffe-id", paymentsSPIFFEID, "whoami"}, wantExit: ExitOK},
		{name: "override from the environment", env: map[string]string{"BANK_ADDR": impostor, "BANK_SERVER_SPIFFE_ID": paymentsSPIFFEID},
			args: []string{"--as", "alice", "whoami"}, wantExit: ExitOK},
		{name: "override refuses the default identity", env: map[string]string{"BANK_ADDR": accounts},
			args: []string{"--as", "alice", "--server-spiffe-id", "spiffe://bank.local/service/accounts-v2", "whoami"}, wantExit: ExitTransport, wantKind: KindServerIdentity,
			wantWords: []string{"presents " + accountsSPIFFEID, "spiffe://bank.local/service/accounts-v2"}},
		{name: "the right server", env: map[string]string{"BANK_ADDR": accounts},
			args: []string{"--as", "alice", "whoami"}, wantExit: ExitOK},
		{name: "override that is not a SPIFFE ID", env: map[string]string{"BANK_ADDR": accounts},
			args: []string{"--as", "alice", "--server-spiffe-id", "accounts", "whoami"}, wantExit: ExitUsage, wantKind: KindUsage,
			wantWords: []string{"--server-spiffe-id"}},
		{name: "override in another trust domain", env: map[string]string{"BANK_ADDR": accounts},
			args: []string{"--as", "alice", "--server-spiffe-id", "spiffe://evil.example/service/accounts", "whoami"}, wantExit: ExitUsage, wantKind: KindUsage,
			wantWords: []string{"--server-spiffe-id", "bank.local"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := with(tc.env, "BANK_CERTS_DIR", f.dir)
			r := runCLI(t, env, append([]string{"--output", "json"}, tc.args...)...)
			if r.code != tc.wantExit {
				t.Fatalf("exit code = %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.wantExit, r.stdout, r.stderr)
			}
			if tc.wantExit == ExitOK {
				return
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing: the call must not have been made", r.stdout)
			}
			e := jsonError(t, r).Error
			t.Logf("diagnosis: %s", e.Diagnosis)
			if e.Kind != tc.wantKind {
				t.Errorf("kind = %q, want %q\ndiagnosis: %s\nstatus: %s: %s", e.Kind, tc.wantKind, e.Diagnosis, e.Code, e.Message)
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

// TestServerIdentityText: the text form is one line of diagnosis, then the raw status.
func TestServerIdentityText(t *testing.T) {
	f := newFixtures(t)
	impostor := startBankAs(t, f, f.pki.Server(t, paymentsSPIFFEID))
	r := runCLI(t, map[string]string{"BANK_CERTS_DIR": f.dir, "BANK_ADDR": impostor}, "--as", "alice", "whoami")
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if r.code != ExitTransport || len(lines) != 2 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	want := "bankctl: refusing the server at " + impostor + ": it presents " + paymentsSPIFFEID + ", but the accounts service must present " + accountsSPIFFEID
	if !strings.HasPrefix(lines[0], want) {
		t.Errorf("line 1 = %q, want prefix %q", lines[0], want)
	}
	if !strings.HasPrefix(lines[1], "grpc status: Unavailable: ") {
		t.Errorf("line 2 = %q, want the raw status", lines[1])
	}
}
