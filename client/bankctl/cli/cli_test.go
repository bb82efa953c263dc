package cli

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"mtlsbank/internal/money"
)

func TestParseAmount(t *testing.T) {
	tests := []struct {
		name      string
		amount    string
		currency  string
		wantMinor int64
		wantCode  string
		wantErr   error
	}{
		{name: "cents", amount: "25.00", currency: "EUR", wantMinor: 2500, wantCode: "EUR"},
		{name: "whole units", amount: "25", currency: "EUR", wantMinor: 2500, wantCode: "EUR"},
		{name: "one decimal", amount: "0.5", currency: "USD", wantMinor: 50, wantCode: "USD"},
		{name: "no minor unit", amount: "1000", currency: "JPY", wantMinor: 1000, wantCode: "JPY"},
		{name: "three decimals", amount: "1.500", currency: "KWD", wantMinor: 1500, wantCode: "KWD"},
		{name: "lower-case code", amount: "1", currency: "eur", wantMinor: 100, wantCode: "EUR"},
		{name: "surrounding spaces", amount: " 2.50 ", currency: "EUR", wantMinor: 250, wantCode: "EUR"},
		{name: "more decimals than the currency", amount: "1.001", currency: "EUR", wantErr: money.ErrTooPrecise},
		{name: "decimals of a currency without", amount: "1.5", currency: "JPY", wantErr: money.ErrTooPrecise},
		{name: "negative", amount: "-1", currency: "EUR", wantErr: money.ErrSign},
		{name: "negative zero", amount: "-0", currency: "EUR", wantErr: money.ErrSign},
		{name: "zero", amount: "0", currency: "EUR", wantErr: errZeroAmount},
		{name: "zero with decimals", amount: "0.00", currency: "EUR", wantErr: errZeroAmount},
		{name: "zero, no minor unit", amount: "0", currency: "JPY", wantErr: errZeroAmount},
		{name: "float syntax", amount: "1e3", currency: "EUR", wantErr: money.ErrSyntax},
		{name: "empty", amount: "", currency: "EUR", wantErr: money.ErrSyntax},
		{name: "overflow", amount: "92233720368547758.08", currency: "EUR", wantErr: money.ErrOverflow},
		{name: "unknown currency", amount: "1", currency: "XYZ", wantErr: money.ErrUnknownCurrency},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseAmount(tc.amount, tc.currency)
			if tc.wantErr != nil {
				var f *failure
				if !errors.As(err, &f) || f.diag.kind != KindUsage {
					t.Fatalf("parseAmount(%q, %q) error = %v, want a usage failure", tc.amount, tc.currency, err)
				}
				if !errors.Is(err, tc.wantErr) && !strings.Contains(err.Error(), tc.wantErr.Error()) {
					t.Errorf("error %q does not say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseAmount(%q, %q): %v", tc.amount, tc.currency, err)
			}
			if m.GetMinorUnits() != tc.wantMinor || m.GetCurrencyCode() != tc.wantCode {
				t.Errorf("parseAmount(%q, %q) = %d %s, want %d %s", tc.amount, tc.currency, m.GetMinorUnits(), m.GetCurrencyCode(), tc.wantMinor, tc.wantCode)
			}
		})
	}
}

// TestUsage checks that command-line mistakes exit 2 before anything is sent.
func TestUsage(t *testing.T) {
	closed := closedAddr(t) // a call that went out would fail differently
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantWord string
	}{
		{name: "unknown command", args: []string{"bogus"}, wantWord: `unknown command "bogus"`},
		{name: "mistyped command", args: []string{"acounts"}, wantWord: `unknown command "acounts" for "bankctl"; did you mean "accounts"?`},
		{name: "mistyped subcommand", args: []string{"accounts", "lst"}, wantWord: `unknown command "lst" for "bankctl accounts"; did you mean "get" or "list"?`},
		{name: "mistyped payments subcommand", args: []string{"payments", "craete"}, wantWord: `did you mean "create"?`},
		{name: "mistyped ledger subcommand", args: []string{"ledger", "wacth"}, wantWord: `did you mean "watch"?`},
		{name: "unknown flag", args: []string{"whoami", "--nope"}, wantWord: "--nope"},
		{name: "missing required flag", args: []string{"accounts", "get"}, wantWord: `"id"`},
		{name: "required flag from the environment still checked", env: map[string]string{"BANK_ACCOUNT_ID": "acc_00000000000000000000000001"}, args: []string{"accounts", "deposit"}, wantWord: `"amount"`},
		{name: "bad output", args: []string{"--output", "xml", "whoami"}, wantWord: `--output "xml"`},
		{name: "bad output from the environment", env: map[string]string{"BANK_OUTPUT": "yaml"}, args: []string{"whoami"}, wantWord: `"yaml"`},
		{name: "bad duration from the environment", env: map[string]string{"BANK_TIMEOUT": "soon"}, args: []string{"whoami"}, wantWord: "BANK_TIMEOUT"},
		{name: "as and cert together", args: []string{"--as", "alice", "--cert", "a.crt", "--key", "a.key", "whoami"}, wantWord: "alternatives"},
		{name: "cert without key", args: []string{"--cert", "a.crt", "whoami"}, wantWord: "go together"},
		{name: "as with a path", args: []string{"--as", "../alice", "whoami"}, wantWord: "want a name"},
		{name: "unknown identity", args: []string{"--as", "nobody", "whoami"}, wantWord: "nobody.crt"},
		{name: "missing CA bundle", args: []string{"--as", "alice", "--ca", "/nonexistent/ca.crt", "whoami"}, wantWord: "--ca"},
		{name: "bad service", args: []string{"whoami", "--service", "ledger"}, wantWord: `--service "ledger"`},
		{name: "bad address", args: []string{"--addr", "localhost", "whoami"}, wantWord: "HOST:PORT"},
		{name: "bad amount", args: []string{"--as", "teller", "accounts", "deposit", "--account-id", "a", "--amount", "1.001"}, wantWord: "decimal places"},
		{name: "negative limit", args: []string{"--as", "auditor", "ledger", "watch", "--limit", "-1"}, wantWord: "--limit"},
		{name: "unknown trace sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, args: []string{"--as", "alice", "whoami"}, wantWord: `OTEL_TRACES_SAMPLER="sometimes"`},
		{name: "trace endpoint without scheme", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"}, args: []string{"--as", "alice", "whoami"}, wantWord: "OTEL_EXPORTER_OTLP_ENDPOINT"},
	}
	f := newFixtures(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"BANK_CERTS_DIR": f.dir, "BANK_ADDR": closed}
			for k, v := range tc.env {
				env[k] = v
			}
			r := runCLI(t, env, tc.args...)
			if r.code != ExitUsage {
				t.Errorf("exit code = %d, want %d\nstderr: %s", r.code, ExitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.wantWord) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantWord, r.stderr)
			}
			if !strings.Contains(r.stderr, "--help") {
				t.Errorf("stderr does not point at --help:\n%s", r.stderr)
			}
		})
	}
}

// TestCommands runs commands that succeed and checks what they print in both formats and
// what they sent.
func TestCommands(t *testing.T) {
	f := newFixtures(t)
	bank := startBank(t, f)
	env := map[string]string{"BANK_CERTS_DIR": f.dir, "BANK_ADDR": bank}

	t.Run("whoami table", func(t *testing.T) {
		r := runCLI(t, env, "--as", "alice", "whoami")
		mustSucceed(t, r)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^SPIFFE ID +spiffe://bank\.local/customer/alice$`),
			regexp.MustCompile(`(?m)^ROLES +customer$`),
			regexp.MustCompile(`(?m)^SUBJECT +CN=alice$`),
		} {
			if !want.MatchString(r.stdout) {
				t.Errorf("output does not match %s:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("whoami json from the environment", func(t *testing.T) {
		r := runCLI(t, with(env, "BANK_AS", "teller", "BANK_OUTPUT", "json"), "whoami")
		mustSucceed(t, r)
		var who struct {
			SpiffeID string   `json:"spiffe_id"`
			Roles    []string `json:"roles"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &who); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		if who.SpiffeID != "spiffe://bank.local/teller/tina" || len(who.Roles) != 1 || who.Roles[0] != "teller" {
			t.Errorf("whoami = %+v, want tina with role teller", who)
		}
	})
	t.Run("health", func(t *testing.T) {
		r := runCLI(t, env, "--as", "alice", "health")
		mustSucceed(t, r)
		if !regexp.MustCompile(`(?m)^accounts +\S+ +\(server\) +SERVING$`).MatchString(r.stdout) {
			t.Errorf("health output:\n%s", r.stdout)
		}
	})
	t.Run("get account table", func(t *testing.T) {
		r := runCLI(t, env, "--as", "alice", "accounts", "get", "--id", aliceAccount)
		mustSucceed(t, r)
		if !regexp.MustCompile(`(?m)^` + aliceAccount + ` +spiffe://bank\.local/customer/alice +25\.00 EUR +Alice current`).MatchString(r.stdout) {
			t.Errorf("account row missing or misaligned:\n%s", r.stdout)
		}
	})
	t.Run("deposit sends exact minor units and a generated key", func(t *testing.T) {
		r := runCLI(t, env, "--as", "teller", "accounts", "deposit", "--account-id", aliceAccount, "--amount", "25.10", "--reference", "salary")
		mustSucceed(t, r)
		m := regexp.MustCompile(`idempotency key: (bankctl-[A-Z2-7]+) \(generated; .*--idempotency-key (bankctl-[A-Z2-7]+)\)`).FindStringSubmatch(r.stderr)
		if m == nil || m[1] != m[2] {
			t.Fatalf("stderr does not show the generated key once, reusable:\n%s", r.stderr)
		}
		// The transaction echoes what was sent: the key and 2510 minor units.
		if !regexp.MustCompile(`(?m)^txn_1 +deposit +25\.10 EUR +salary +` + m[1]).MatchString(r.stdout) {
			t.Errorf("transaction row does not show what was sent:\n%s", r.stdout)
		}
		if !regexp.MustCompile(`(?m)^1 +` + aliceAccount + ` +\+25\.10 EUR +25\.10 EUR$`).MatchString(r.stdout) {
			t.Errorf("entry row missing:\n%s", r.stdout)
		}
	})
	t.Run("deposit json with a given key", func(t *testing.T) {
		r := runCLI(t, env, "--as", "teller", "-o", "json", "accounts", "deposit", "--account-id", aliceAccount, "--amount", "1000", "--currency", "JPY", "--idempotency-key", "k-1")
		mustSucceed(t, r)
		var resp struct {
			Transaction struct {
				Amount struct {
					CurrencyCode string `json:"currency_code"`
					MinorUnits   string `json:"minor_units"`
				} `json:"amount"`
				IdempotencyKey string `json:"idempotency_key"`
			} `json:"transaction"`
			Replayed *bool `json:"replayed"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		tx := resp.Transaction
		if tx.Amount.CurrencyCode != "JPY" || tx.Amount.MinorUnits != "1000" || tx.IdempotencyKey != "k-1" {
			t.Errorf("sent %+v, want 1000 JPY with key k-1", tx)
		}
		if resp.Replayed == nil {
			t.Errorf("unpopulated fields are left out; scripts want every field:\n%s", r.stdout)
		}
		if r.stderr != "" {
			t.Errorf("stderr = %q, want nothing (the key was given)", r.stderr)
		}
	})
	t.Run("watch stops after limit", func(t *testing.T) {
		r := runCLI(t, env, "--as", "teller", "ledger", "watch", "--after-sequence", "10", "--limit", "2")
		mustSucceed(t, r)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQUENCE") {
			t.Fatalf("want a header and 2 entries:\n%s", r.stdout)
		}
		if !regexp.MustCompile(`^11 +txn_11 +` + aliceAccount + ` +-0\.05 EUR +0\.45 EUR`).MatchString(lines[1]) {
			t.Errorf("entry line = %q", lines[1])
		}
	})
	t.Run("watch json until --for ends it", func(t *testing.T) {
		r := runCLI(t, env, "--as", "teller", "-o", "json", "ledger", "watch", "--for", "300ms")
		mustSucceed(t, r)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 {
			t.Fatalf("want 3 entries, one JSON object per line:\n%s", r.stdout)
		}
		for i, l := range lines {
			var e struct {
				Sequence string `json:"sequence"`
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil || e.Sequence == "" {
				t.Errorf("line %d is not an entry: %v: %s", i+1, err, l)
			}
		}
	})
}

func mustSucceed(tb testing.TB, r result) {
	tb.Helper()
	if r.code != ExitOK {
		tb.Fatalf("exit code %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// with returns a copy of env with the key/value pairs kv set.
func with(env map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(env)+len(kv)/2)
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
