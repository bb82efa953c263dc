package cli

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/svidsource/workloadapitest"
)

// TestWorkloadAPIIdentity: with --spiffe-endpoint (or BANK_SPIFFE_ENDPOINT, or
// SPIFFE_ENDPOINT_SOCKET when no identity flag is given) bankctl calls with the SVID the
// agent issued, and whoami shows its serial; files and an endpoint together are refused,
// and an agent without an identity for bankctl is a clear failure, not a hang.
func TestWorkloadAPIIdentity(t *testing.T) {
	f := newFixtures(t)
	bank := startBank(t, f)
	agent := workloadapitest.New(t)
	alice := f.pki.Client(t, "spiffe://bank.local/customer/alice")
	agent.Set(alice, f.pki.Bundle)
	serialLine := regexp.MustCompile(`(?m)^SERIAL +` + pki.SerialHex(alice.Cert.SerialNumber) + `$`)
	env := map[string]string{"BANK_ADDR": bank, "BANK_CERTS_DIR": t.TempDir()} // no dev PKI: files cannot be what works

	for name, tt := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"flag":                     {env: env, args: []string{"--spiffe-endpoint", agent.Addr()}},
		"BANK_SPIFFE_ENDPOINT":     {env: with(env, "BANK_SPIFFE_ENDPOINT", agent.Addr())},
		"SPIFFE_ENDPOINT_SOCKET":   {env: with(env, "SPIFFE_ENDPOINT_SOCKET", agent.Addr())},
		"BANK_ variable over both": {env: with(with(env, "BANK_SPIFFE_ENDPOINT", agent.Addr()), "SPIFFE_ENDPOINT_SOCKET", "unix:///nonexistent.sock")},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, tt.env, append(tt.args, "whoami")...)
			mustSucceed(t, r)
			if !serialLine.MatchString(r.stdout) || !strings.Contains(r.stdout, "spiffe://bank.local/customer/alice") {
				t.Errorf("whoami does not show the SVID:\n%s", r.stdout)
			}
		})
	}

	t.Run("SPIFFE_ENDPOINT_SOCKET beside --as is ignored", func(t *testing.T) {
		r := runCLI(t, with(with(env, "BANK_CERTS_DIR", f.dir), "SPIFFE_ENDPOINT_SOCKET", agent.Addr()), "--as", "teller", "whoami")
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, "spiffe://bank.local/teller/tina") {
			t.Errorf("the environment's socket replaced --as:\n%s", r.stdout)
		}
	})
	for name, args := range map[string][]string{
		"--as":   {"--spiffe-endpoint", agent.Addr(), "--as", "alice"},
		"--cert": {"--spiffe-endpoint", agent.Addr(), "--cert", "a.crt", "--key", "a.key"},
		"--ca":   {"--spiffe-endpoint", agent.Addr(), "--ca", "ca.crt"},
	} {
		t.Run("endpoint and "+name, func(t *testing.T) {
			r := runCLI(t, env, append(args, "whoami")...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "two sources of our certificate") {
				t.Fatalf("exit %d, stderr %q; want a usage error naming both sources", r.code, r.stderr)
			}
		})
	}
	t.Run("no identity issued", func(t *testing.T) {
		empty := workloadapitest.New(t)
		start := time.Now()
		r := runCLI(t, env, "--spiffe-endpoint", empty.Addr(), "--timeout", "1500ms", "-o", "json", "whoami")
		if e := jsonError(t, r); r.code != ExitTransport || e.Error.Kind != KindNoSVID || !strings.Contains(e.Error.Diagnosis, "no registration entry") {
			t.Fatalf("exit %d, %+v; want no-svid naming the registration entry", r.code, e)
		}
		t.Logf("gave up after %s", time.Since(start).Round(time.Millisecond))
	})
	for _, endpoint := range []string{"/run/agent.sock", "tcp://127.0.0.1:8081"} {
		t.Run("bad endpoint "+endpoint, func(t *testing.T) {
			r := runCLI(t, env, "--spiffe-endpoint", endpoint, "whoami")
			if r.code != ExitUsage || !strings.Contains(r.stderr, "unix:///path/to/agent.sock") {
				t.Fatalf("exit %d, stderr %q; want a usage error", r.code, r.stderr)
			}
		})
	}
}
