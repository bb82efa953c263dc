package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/tlsconfig"
)

func TestParseMoneyLimits(t *testing.T) {
	noEnv := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		max     map[string]int64 // currency -> want MaxAmount
		supply  map[string]int64 // currency -> want MaxSupply
		wantErr string
	}{
		{name: "defaults", max: map[string]int64{"EUR": 100_000_000_000, "JPY": 1_000_000_000, "KWD": 1_000_000_000_000},
			supply: map[string]int64{"EUR": 10_000_000_000_000_000, "CLF": 1_000_000_000_000_000_000}},
		{name: "flags", args: []string{"--max-amount", "EUR:1000000.00,USD:500000.00", "--max-supply", "*:1000000000000"},
			max:    map[string]int64{"EUR": 100_000_000, "USD": 50_000_000, "JPY": 1_000_000_000},
			supply: map[string]int64{"EUR": 100_000_000_000_000, "JPY": 1_000_000_000_000}},
		{name: "environment", env: map[string]string{"BANK_MAX_AMOUNT": "JPY:150000000"},
			max: map[string]int64{"JPY": 150_000_000, "EUR": 100_000_000_000}},
		{name: "flag beats environment", args: []string{"--max-amount=EUR:10.00"}, env: map[string]string{"BANK_MAX_AMOUNT": "EUR:20.00"},
			max: map[string]int64{"EUR": 1000}},
		{name: "max amount above max supply", args: []string{"--max-amount", "EUR:2000.00", "--max-supply", "EUR:1000.00"},
			wantErr: "--max-amount and --max-supply: ledger: max amount of EUR (2000.00 EUR) is more than its max supply (1000.00 EUR)"},
		{name: "supply above the ceiling", args: []string{"--max-supply", "EUR:10000000000000000.01"}, wantErr: "more than 1000000000000000000 minor units"},
		{name: "malformed", args: []string{"--max-amount", "EUR=5"}, wantErr: `invalid value "EUR=5" for flag -max-amount`},
		{name: "malformed in the environment", env: map[string]string{"BANK_MAX_SUPPLY": "EUR:1.001"}, wantErr: `BANK_MAX_SUPPLY="EUR:1.001"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := noEnv
			if tt.env != nil {
				getenv = func(k string) string { return tt.env[k] }
			}
			cfg, err := parseConfig(tt.args, getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			for code, want := range tt.max {
				if got, _ := cfg.MaxAmount.Max(code); got != want {
					t.Errorf("max amount of %s = %d, want %d", code, got, want)
				}
			}
			for code, want := range tt.supply {
				if got, _ := cfg.MaxSupply.Max(code); got != want {
					t.Errorf("max supply of %s = %d, want %d", code, got, want)
				}
			}
		})
	}
}

// TestRunMoneyLimits runs the service as bin/accounts does, with --max-amount on the
// command line and the max supply from BANK_MAX_SUPPLY, and checks over mutual TLS that
// the ledger behind it applies both: a teller's deposit above the maximum is an
// InvalidArgument, and the deposit past the supply a FailedPrecondition.
func TestRunMoneyLimits(t *testing.T) {
	f := newFixture(t)
	args := []string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--db", f.cfg.DB, "--cert", f.cfg.Cert,
		"--key", f.cfg.Key, "--ca", f.cfg.CA, "--crl", f.cfg.CRL, "--audit-key", f.cfg.AuditKey, "--max-amount", "EUR:100.00"}
	env := map[string]string{"BANK_MAX_SUPPLY": "EUR:250.00"}
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, slog.New(slog.NewJSONHandler(logs, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for logs.count(`"msg":"accounts serving"`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the service did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	addr := logs.field(t, "accounts serving", "addr")

	src, err := tlsconfig.NewSource(td, f.pki.Client(t, "spiffe://bank.local/teller/tina").TLSCertificate(), f.pki.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	creds := tlsconfig.ClientCredentials(src, "localhost", tlsconfig.WithServerID(spiffeid.RequireFromString("spiffe://bank.local/service/accounts")))
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	teller := accountsv1.NewAccountsServiceClient(cc)
	callCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	opened, err := teller.OpenAccount(callCtx, &accountsv1.OpenAccountRequest{Owner: "spiffe://bank.local/customer/alice", Currency: "EUR"})
	if err != nil {
		t.Fatalf("OpenAccount: %v", err)
	}
	id := opened.GetAccount().GetId()
	deposit := func(key string, minor int64) error {
		_, err := teller.Deposit(callCtx, &accountsv1.DepositRequest{AccountId: id, IdempotencyKey: key,
			Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: minor}})
		return err
	}
	tests := []struct {
		key   string
		minor int64
		code  codes.Code
		msg   string
	}{
		{key: "over-max", minor: 10001, code: codes.InvalidArgument, msg: "largest amount of one request, 100.00 EUR"},
		{key: "d1", minor: 10000, code: codes.OK},
		{key: "d2", minor: 10000, code: codes.OK},
		{key: "past-supply", minor: 5001, code: codes.FailedPrecondition, msg: "250.00 EUR"},
		{key: "d3", minor: 5000, code: codes.OK},
	}
	for _, tt := range tests {
		err := deposit(tt.key, tt.minor)
		if got := status.Code(err); got != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
			t.Errorf("deposit %s of %d: %v, want %s with %q", tt.key, tt.minor, err, tt.code, tt.msg)
		}
	}
}
