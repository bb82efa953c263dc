package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/tlsconfig"
)

// requireExamplesEnv, set to 1 (as .ci/run does), makes a missing runtime a failure
// instead of a skip.
const requireExamplesEnv = "BANK_REQUIRE_EXAMPLES"

// step is what one line of an example's output must say: "STEP (as WHO): RESULT words",
// where every word of want appears among the words (whole, in any order).
type step struct {
	name, who, result string
	want              []string
}

// exampleSteps are the lines every example prints, in order: the same for each language.
func exampleSteps(tellerSerial string) []step {
	return []step{
		{"whoami", "teller", "OK", []string{"spiffe_id=spiffe://bank.local/teller/tina", "roles=teller", "serial=" + tellerSerial}},
		{"open-account", "teller", "OK", []string{"owner=spiffe://bank.local/customer/alice", "currency=EUR"}},
		{"open-account", "teller", "OK", []string{"owner=spiffe://bank.local/customer/bob", "currency=EUR"}},
		{"deposit", "teller", "OK", []string{"amount=100.00 EUR"}},
		{"pay", "alice", "OK", []string{"status=COMPLETED", "amount=25.00 EUR"}},
		// Refused in the TLS handshake: the service never answers, so no status details.
		{"refused-certificate", "expired", "UNAVAILABLE", []string{"reason=none"}},
		// Authorization denials stay generic: no ErrorInfo.
		{"permission-denied", "alice", "PERMISSION_DENIED", []string{"reason=none"}},
		{"invalid-argument", "alice", "INVALID_ARGUMENT", []string{"reason=INVALID_AMOUNT", "domain=bank.local", "field=amount.minor_units"}},
		{"insufficient-funds", "alice", "FAILED_PRECONDITION", []string{"reason=INSUFFICIENT_FUNDS", "domain=bank.local"}},
		{"over-limit", "alice", "PERMISSION_DENIED", []string{"reason=CUSTOMER_PAYMENT_LIMIT_EXCEEDED", "domain=bank.local", "meta.max=1000.00", "meta.currency=EUR"}},
	}
}

var stepLine = regexp.MustCompile(`^(\S+) \(as (\S+)\): (\S+)(?: (.*))?$`)

// TestExamples runs the clients in other languages (examples/python with grpcio,
// examples/node with grpc-js) as subprocesses against the real accounts and payments
// processes on a fresh dev PKI, and checks each step's result, each refusal's code and
// ErrorInfo reason, and, with a Go client, that the balances are what the steps say.
// A runtime that is missing skips its subtest, unless BANK_REQUIRE_EXAMPLES=1.
func TestExamples(t *testing.T) {
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	python, pythonErr := findPython(ctx)
	nodeErr := findNode(root)
	if pythonErr != nil && nodeErr != nil && os.Getenv(requireExamplesEnv) != "1" {
		t.Skipf("no runtime for the examples: %v; %v", pythonErr, nodeErr)
	}

	svc := startServices(ctx, t, binaries(ctx, t, root))
	tellerSerial := certSerial(t, filepath.Join(svc.certs, "teller.crt"))
	teller := dialAccounts(t, svc, "teller")
	flags := []string{"--certs", svc.certs, "--accounts", svc.accountsAddr, "--payments", svc.paymentsAddr, "--server-name", "localhost"}

	t.Run("python", func(t *testing.T) {
		skipUnless(t, pythonErr)
		start := time.Now()
		gen := t.TempDir()
		run(ctx, t, root, nil, python, "examples/python/generate.py", "--out", gen)
		// The log shows the TLS handshake (tsi) and the alert that grpcio keeps out of the status.
		stdout, stderr := runExample(ctx, t, root, []string{"GRPC_VERBOSITY=debug", "GRPC_TRACE=tsi"},
			python, append([]string{"examples/python/client.py", "--gen", gen}, flags...)...)
		lines := checkSteps(t, stdout, exampleSteps(tellerSerial))
		checkBalances(ctx, t, teller, lines)
		for _, want := range []string{"TLSv1.3", "alert certificate expired"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("grpcio's log (GRPC_VERBOSITY=debug GRPC_TRACE=tsi) lacks %q:\n%s", want, tail(stderr, 40))
			}
		}
		t.Logf("python example: %v (stub generation included)", time.Since(start).Round(time.Millisecond))
	})

	t.Run("node", func(t *testing.T) {
		skipUnless(t, nodeErr)
		start := time.Now()
		stdout, _ := runExample(ctx, t, filepath.Join(root, "examples", "node"), nil, "node", append([]string{"client.js"}, flags...)...)
		lines := checkSteps(t, stdout, exampleSteps(tellerSerial))
		checkBalances(ctx, t, teller, lines)
		// grpc-js puts the TLS alert into the status message.
		if l := lines[5]; !strings.Contains(l, "certificate expired") {
			t.Errorf("grpc-js's refusal of an expired certificate does not name the alert: %s", l)
		}
		t.Logf("node example: %v", time.Since(start).Round(time.Millisecond))
	})
}

// findPython returns a python3 that imports grpc and grpc_tools: $BANK_PYTHON if set,
// else Debian's /usr/bin/python3 (a pyenv or venv python3 first on PATH does not see
// Debian's packages), else python3 on PATH.
func findPython(ctx context.Context) (string, error) {
	candidates := []string{"/usr/bin/python3", "python3"}
	if p := os.Getenv("BANK_PYTHON"); p != "" {
		candidates = []string{p}
	}
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if exec.CommandContext(ctx, path, "-c", "import grpc, grpc_tools").Run() == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("no python3 with grpc and grpc_tools (tried %s): apt-get install python3-grpcio python3-grpc-tools",
		strings.Join(candidates, ", "))
}

// findNode checks for node and the example's installed packages.
func findNode(root string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("no node on PATH: install Node.js 18 or later")
	}
	dir := filepath.Join(root, "examples", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@grpc", "grpc-js", "package.json")); err != nil {
		return fmt.Errorf("%s/node_modules is not installed: run 'npm ci' there", dir)
	}
	return nil
}

// skipUnless skips the test when err says its runtime is missing, or fails it when
// BANK_REQUIRE_EXAMPLES=1.
func skipUnless(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if os.Getenv(requireExamplesEnv) == "1" {
		tb.Fatalf("%v (%s=1: a missing runtime is a failure)", err, requireExamplesEnv)
	}
	tb.Skip(err)
}

// runExample runs an example client and returns its stdout and stderr; a non-zero exit
// fails the test.
func runExample(ctx context.Context, tb testing.TB, dir string, env []string, name string, args ...string) (string, string) {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %s: %v\nstdout:\n%s\nstderr (end):\n%s", name, strings.Join(args, " "), err, stdout.String(), tail(stderr.String(), 40))
	}
	tb.Logf("output:\n%s", stdout.String())
	return stdout.String(), stderr.String()
}

// checkSteps checks that out has exactly the lines of want, in order, and returns them.
func checkSteps(tb testing.TB, out string, want []step) []string {
	tb.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		tb.Fatalf("%d output lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		m := stepLine.FindStringSubmatch(lines[i])
		if m == nil || m[1] != w.name || m[2] != w.who || m[3] != w.result {
			tb.Errorf("line %d: %q, want %q (as %s): %s", i+1, lines[i], w.name, w.who, w.result)
			continue
		}
		for _, word := range w.want {
			if !strings.Contains(" "+m[4]+" ", " "+word+" ") {
				tb.Errorf("line %d (%s): lacks %q: %s", i+1, w.name, word, lines[i])
			}
		}
	}
	if tb.Failed() {
		tb.FailNow()
	}
	return lines
}

// checkBalances reads, as the teller with the Go client, the two accounts the example
// opened (lines 2 and 3): alice's holds 100.00 - 25.00 EUR and bob's 25.00 EUR, so the
// payment moved its amount once and no refusal moved anything.
func checkBalances(ctx context.Context, tb testing.TB, teller accountsv1.AccountsServiceClient, lines []string) {
	tb.Helper()
	for i, want := range map[int]int64{1: 7500, 2: 2500} {
		id := wordValue(lines[i], "account")
		resp, err := teller.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: id})
		if err != nil {
			tb.Fatalf("GetAccount %q (from %q): %v", id, lines[i], err)
		}
		if got := resp.GetAccount().GetBalance().GetMinorUnits(); got != want {
			tb.Errorf("account %s (%s) holds %d minor units, want %d", id, resp.GetAccount().GetOwner(), got, want)
		}
	}
}

// wordValue returns the value of the word key=value in line.
func wordValue(line, key string) string {
	for _, w := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(w, key+"="); ok {
			return v
		}
	}
	return ""
}

// dialAccounts returns an accounts client authenticated as the dev identity name, the
// way bankctl connects (tlsconfig: the dev CA only, TLS 1.3, the server's SPIFFE ID).
func dialAccounts(tb testing.TB, svc services, name string) accountsv1.AccountsServiceClient {
	tb.Helper()
	src, err := tlsconfig.LoadSource(spiffeid.RequireTrustDomainFromString("bank.local"), tlsconfig.Files{
		Cert: filepath.Join(svc.certs, name+".crt"), Key: filepath.Join(svc.certs, name+".key"),
		CA: filepath.Join(svc.certs, "ca.crt"), Intermediates: filepath.Join(svc.certs, "intermediates.crt"),
	})
	if err != nil {
		tb.Fatal(err)
	}
	creds := tlsconfig.ClientCredentials(src, "localhost",
		tlsconfig.WithServerID(spiffeid.RequireFromString("spiffe://bank.local/service/accounts")))
	cc, err := grpc.NewClient("passthrough:///"+svc.accountsAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return accountsv1.NewAccountsServiceClient(cc)
}

// certSerial is the serial of the leaf in a PEM file, as openssl prints it.
func certSerial(tb testing.TB, path string) string {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	certs, err := pki.ParseCertsPEM(data)
	if err != nil || len(certs) == 0 {
		tb.Fatalf("read %s: %v", path, err)
	}
	return pki.SerialHex(certs[0].SerialNumber)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
