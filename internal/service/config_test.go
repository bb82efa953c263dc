package service_test

import (
	"flag"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/service"
)

func TestByteSize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    service.ByteSize
		text    string
		wantErr bool
	}{
		{name: "bytes", in: "1500", want: 1500, text: "1500"},
		{name: "MiB", in: "4MiB", want: 4 << 20, text: "4MiB"},
		{name: "KiB", in: "512KiB", want: 512 << 10, text: "512KiB"},
		{name: "B suffix", in: "2048B", want: 2048, text: "2KiB"},
		{name: "decimal units are not binary ones", in: "4MB", wantErr: true},
		{name: "negative", in: "-1", wantErr: true},
		{name: "over 2GiB", in: "4096MiB", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b service.ByteSize
			err := b.Set(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Set(%q) = %d, want an error", tt.in, b)
				}
				return
			}
			if err != nil || b != tt.want || b.String() != tt.text {
				t.Fatalf("Set(%q) = %d (%q), %v; want %d (%q)", tt.in, b, b.String(), err, tt.want, tt.text)
			}
		})
	}
}

func TestIDList(t *testing.T) {
	var l service.IDList
	if err := l.Set(" spiffe://bank.local/service/payments ,spiffe://bank.local/teller/tina,"); err != nil {
		t.Fatal(err)
	}
	if got := l.String(); got != "spiffe://bank.local/service/payments,spiffe://bank.local/teller/tina" {
		t.Fatalf("String() = %q", got)
	}
	if err := l.Set("spiffe://bank.local/teller/tina,http://example.com"); err == nil || len(l) != 2 {
		t.Fatalf("Set with a bad ID = %v, list %v; want an error and the list unchanged", err, l)
	}
	if err := l.Set(""); err != nil || len(l) != 0 {
		t.Fatalf(`Set("") = %v, list %v; want an empty list`, err, l)
	}
}

// TestParseFlagsUsageNamesEnv: --help lists each flag's environment variable.
func TestParseFlagsUsageNamesEnv(t *testing.T) {
	var cfg service.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	cfg.RegisterFlags(fs, service.Defaults{Name: "test"})
	if err := service.ParseFlags(fs, []string{"--help"}, func(string) string { return "" }); err != flag.ErrHelp {
		t.Fatalf("ParseFlags(--help) = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"(env BANK_RATE_LIMIT_EXEMPT)", "(env BANK_METRICS_LISTEN)", "default 64KiB", "default 10s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

func TestCRLConfig(t *testing.T) {
	base := func() service.Config {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		var c service.Config
		c.RegisterFlags(fs, service.Defaults{Name: "accounts", Listen: "x:1", MetricsListen: "x:2"})
		if err := service.ParseFlags(fs, nil, func(string) string { return "" }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name      string
		edit      func(c *service.Config)
		wantErr   string
		wantState string
		// wantOptional: a CA without a CRL is not refused (opt-out, or no CRL at all).
		wantOptional bool
	}{
		{name: "defaults", edit: func(*service.Config) {}, wantState: "data/accounts.crl-state.json"},
		{name: "explicit state", edit: func(c *service.Config) { c.CRLState = "/var/lib/bank/crl.json" }, wantState: "/var/lib/bank/crl.json"},
		{name: "zero staleness fails closed at nextUpdate", edit: func(c *service.Config) { c.CRLMaxStaleness = 0 }, wantState: "data/accounts.crl-state.json"},
		{name: "CRLs of every CA not required", edit: func(c *service.Config) { c.CRLRequireAll = false }, wantState: "data/accounts.crl-state.json", wantOptional: true},
		{name: "no CRL: revocation off", edit: func(c *service.Config) { c.CRL = "" }, wantState: "data/accounts.crl-state.json", wantOptional: true},
		{name: "negative staleness", edit: func(c *service.Config) { c.CRLMaxStaleness = -time.Second }, wantErr: "--crl-max-staleness"},
		{name: "staleness beyond a week", edit: func(c *service.Config) { c.CRLMaxStaleness = 8 * 24 * time.Hour }, wantErr: "--crl-max-staleness"},

		{name: "database URL without a state file", edit: func(c *service.Config) { c.DB = "postgres://db/bank" }, wantErr: "--crl-state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := c.CRLStatePath(); got != tt.wantState {
				t.Errorf("CRLStatePath = %q, want %q", got, tt.wantState)
			}
			if got := c.CRLRequired(); got == tt.wantOptional {
				t.Errorf("CRLRequired = %v, want %v", got, !tt.wantOptional)
			}
		})
	}
}

// TestCRLRequireAllFlag: --crl-require-all is on unless turned off explicitly, by flag or
// environment.
func TestCRLRequireAllFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{name: "default", want: true},
		{name: "flag off", args: []string{"--crl-require-all=false"}},
		{name: "environment off", env: map[string]string{"BANK_CRL_REQUIRE_ALL": "false"}},
		{name: "flag beats environment", args: []string{"--crl-require-all"}, env: map[string]string{"BANK_CRL_REQUIRE_ALL": "false"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c service.Config
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			c.RegisterFlags(fs, service.Defaults{Name: "accounts", Listen: "x:1", MetricsListen: "x:2"})
			if err := service.ParseFlags(fs, tt.args, func(k string) string { return tt.env[k] }); err != nil {
				t.Fatal(err)
			}
			if c.CRLRequireAll != tt.want || c.CRLRequired() != tt.want {
				t.Errorf("CRLRequireAll = %v, CRLRequired = %v; want %v", c.CRLRequireAll, c.CRLRequired(), tt.want)
			}
		})
	}
}

// TestConnectionCapFlags: the connection caps are flags with the grpcserver defaults, and
// values that cannot work are refused naming the flag.
func TestConnectionCapFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults"},
		{name: "no per-source cap", args: []string{"--max-connections-per-source=0"}},
		{name: "zero total", args: []string{"--max-connections=0"}, wantErr: "--max-connections 0 must be at least 1"},
		{name: "negative per source", args: []string{"--max-connections-per-source=-1"}, wantErr: "--max-connections-per-source -1 must not be negative"},
		{name: "no handshaking per-source cap", args: []string{"--max-handshaking-per-source=0"}},
		{name: "zero handshaking", args: []string{"--max-handshaking=0"}, wantErr: "--max-handshaking 0 must be at least 1 and below --max-connections 4096"},
		{name: "handshaking as many as connections", args: []string{"--max-connections=100", "--max-handshaking=100"},
			wantErr: "--max-handshaking 100 must be at least 1 and below --max-connections 100"},
		{name: "negative handshaking per source", args: []string{"--max-handshaking-per-source=-1"}, wantErr: "--max-handshaking-per-source -1 must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg service.Config
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			cfg.RegisterFlags(fs, service.Defaults{Name: "test", Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0"})
			if err := service.ParseFlags(fs, tt.args, func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
	var cfg service.Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.ContinueOnError), service.Defaults{Name: "test"})
	if cfg.MaxConnections != grpcserver.DefaultMaxConnections || cfg.MaxConnectionsPerSource != grpcserver.DefaultMaxConnectionsPerSource {
		t.Errorf("defaults %d/%d, want grpcserver's %d/%d", cfg.MaxConnections, cfg.MaxConnectionsPerSource,
			grpcserver.DefaultMaxConnections, grpcserver.DefaultMaxConnectionsPerSource)
	}
	if cfg.MaxHandshaking != grpcserver.DefaultMaxHandshaking || cfg.MaxHandshakingPerSource != grpcserver.DefaultMaxHandshakingPerSource {
		t.Errorf("handshaking defaults %d/%d, want grpcserver's %d/%d", cfg.MaxHandshaking, cfg.MaxHandshakingPerSource,
			grpcserver.DefaultMaxHandshaking, grpcserver.DefaultMaxHandshakingPerSource)
	}
}
