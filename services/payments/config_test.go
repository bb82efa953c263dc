package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/auditlog/auditlogtest"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/service"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c config)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c config) {
				if c.Listen != "localhost:50052" || c.MetricsListen != "localhost:9092" || c.DB != "data/payments.db" ||
					c.Cert != "certs/dev/payments.crt" || c.Key != "certs/dev/payments.key" || c.CA != "certs/dev/ca.crt" ||
					c.CRL != "certs/dev/crl.pem" || c.Policy != "" || c.AccountsAddr != "localhost:50051" ||
					c.AccountsServerName != "localhost" || c.AccountsSPIFFEID.String() != "spiffe://bank.local/service/accounts" ||
					c.RecoveryInterval != 10*time.Second || c.CallTimeout != 5*time.Second ||
					c.CustomerLimits.String() != "EUR:1000.00,USD:1000.00" || c.CustomerDaily.String() != "EUR:5000.00,USD:5000.00" {
					t.Fatalf("defaults: %+v", c)
				}
			},
		},
		{
			name: "environment",
			env: map[string]string{"BANK_LISTEN": "127.0.0.1:1", "BANK_ACCOUNTS_ADDR": "acc:1", "BANK_CUSTOMER_LIMIT": "JPY:100",
				"BANK_CUSTOMER_DAILY_LIMIT": "JPY:1000", "BANK_ACCOUNTS_SPIFFE_ID": "spiffe://bank.local/service/ledger"},
			check: func(t *testing.T, c config) {
				if c.Listen != "127.0.0.1:1" || c.AccountsAddr != "acc:1" || c.CustomerLimits.String() != "JPY:100" ||
					c.CustomerDaily.String() != "JPY:1000" ||
					c.AccountsSPIFFEID.String() != "spiffe://bank.local/service/ledger" {
					t.Fatalf("env: %+v", c)
				}
			},
		},
		{
			name: "flags beat environment",
			args: []string{"--listen", "127.0.0.1:2", "--recovery-interval", "250ms"},
			env:  map[string]string{"BANK_LISTEN": "127.0.0.1:1"},
			check: func(t *testing.T, c config) {
				if c.Listen != "127.0.0.1:2" || c.RecoveryInterval != 250*time.Millisecond {
					t.Fatalf("flags: %+v", c)
				}
			},
		},
		{name: "bad limit", args: []string{"--customer-limit", "EUR:1.001"}, wantErr: "customer-limit"},
		{name: "bad limit in the environment", env: map[string]string{"BANK_CUSTOMER_LIMIT": "EUR"}, wantErr: "BANK_CUSTOMER_LIMIT"},
		{name: "bad daily limit", args: []string{"--customer-daily-limit", "EUR:-5"}, wantErr: "customer-daily-limit"},
		{name: "bad daily limit in the environment", env: map[string]string{"BANK_CUSTOMER_DAILY_LIMIT": "EUR:1,EUR:2"}, wantErr: "BANK_CUSTOMER_DAILY_LIMIT"},
		{
			name: "a currency with a per-payment limit but no daily limit", args: []string{"--customer-daily-limit", "EUR:5000"},
			wantErr: "--customer-limit allows USD but --customer-daily-limit has no USD limit",
		},
		{name: "bad SPIFFE ID", args: []string{"--accounts-spiffe-id", "accounts"}, wantErr: "accounts-spiffe-id"},
		{name: "zero interval", args: []string{"--recovery-interval", "0s"}, wantErr: "--recovery-interval 0s must be positive"},
		{name: "bad timeout", args: []string{"--accounts-timeout", "soon"}, wantErr: "accounts-timeout"},
		{name: "empty accounts address", args: []string{"--accounts-addr", ""}, wantErr: "--accounts-addr must not be empty"},
		{name: "accounts list with an empty element", args: []string{"--accounts-addr", "a:1,,b:2"}, wantErr: "--accounts-addr: empty address"},
		{name: "accounts list without a port", args: []string{"--accounts-addr", "a:1,b"}, wantErr: `--accounts-addr: "b": want host:port`},
		{name: "accounts list with a bad port", args: []string{"--accounts-addr", "a:1,b:99999"}, wantErr: `port "99999"`},
		{name: "accounts list with a duplicate", args: []string{"--accounts-addr", "a:1,a:1"}, wantErr: `"a:1" is listed twice`},
		{name: "accounts list of targets", args: []string{"--accounts-addr", "dns:///a:1,b:2"}, wantErr: "a list holds host:port addresses"},
		{name: "empty listen", args: []string{"--listen", ""}, wantErr: "--listen must not be empty"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestEmbeddedPolicy proves the default policy covers every method the service serves,
// else the service would refuse to start. What each role may do is proven by the role
// matrix of internal/payments.
func TestEmbeddedPolicy(t *testing.T) {
	p, err := authz.ParsePolicy("embedded policy.yaml", defaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	paymentsv1.RegisterPaymentsServiceServer(s, paymentsv1.UnimplementedPaymentsServiceServer{})
	identityv1.RegisterIdentityServiceServer(s, identityv1.UnimplementedIdentityServiceServer{})
	if err := p.Check(s.GetServiceInfo()); err != nil {
		t.Fatal(err)
	}
	if unused := p.Unused(s.GetServiceInfo()); len(unused) > 0 {
		// Health and reflection are registered by grpcserver, not here.
		for _, u := range unused {
			if !strings.HasPrefix(u, "/grpc.") {
				t.Errorf("policy rule %s matches no method", u)
			}
		}
	}
}

// TestStartRefusesBrokenConfiguration: the service refuses to start, and creates no
// database, when its policy leaves a method unprotected or a file is unusable.
func TestStartRefusesBrokenConfiguration(t *testing.T) {
	p := pkitest.New(t)
	cert, key := p.WriteLeaf(t, "payments", p.Server(t, paymentsID))
	ca := p.WriteBundle(t)
	auditKey, _ := auditlogtest.WriteKeyPair(t, p.Dir, "payments")
	uncovered := filepath.Join(t.TempDir(), "uncovered.yaml")
	if err := os.WriteFile(uncovered, []byte(strings.ReplaceAll(string(defaultPolicy),
		"      - /bank.payments.v1.PaymentsService/ListPayments\n", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"method without a rule", []string{"--policy", uncovered}, "/bank.payments.v1.PaymentsService/ListPayments"},
		{"missing policy file", []string{"--policy", filepath.Join(t.TempDir(), "nope.yaml")}, "nope.yaml"},
		{"missing certificate", []string{"--cert", filepath.Join(t.TempDir(), "nope.crt")}, "nope.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "payments.db")
			args := append([]string{"--db", db, "--cert", cert, "--key", key, "--ca", ca, "--crl", "", "--audit-key", auditKey}, tt.args...)
			cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			a := &app{cfg: cfg}
			rt, err := service.New(context.Background(), a.service(), cfg.Config, nil)
			if err == nil {
				rt.Close()
				t.Fatal("service.New: no error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("service.New: %v, want it to name %q", err, tt.wantErr)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Fatalf("the database was created (stat: %v)", err)
			}
		})
	}
}
