package service_test

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/service"
	"mtlsbank/internal/svidsource"
	"mtlsbank/internal/svidsource/workloadapitest"
)

// TestIdentitySourceFlags: the identity comes from the files or from the Workload API,
// never from both; SPIFFE_ENDPOINT_SOCKET only counts when no certificate flag is given.
func TestIdentitySourceFlags(t *testing.T) {
	const sock = "unix:///run/spire/agent.sock"
	tests := []struct {
		name         string
		args         []string
		env          map[string]string
		wantEndpoint string
		wantCert     string
		wantErr      string
	}{
		{name: "defaults: the dev files", wantCert: "certs/dev/test.crt"},
		{name: "flag", args: []string{"--spiffe-endpoint", sock}, wantEndpoint: sock},
		{name: "BANK_ variable", env: map[string]string{"BANK_SPIFFE_ENDPOINT": sock}, wantEndpoint: sock},
		{name: "standard variable alone", env: map[string]string{"SPIFFE_ENDPOINT_SOCKET": sock}, wantEndpoint: sock},
		{name: "standard variable beside --cert is ignored", args: []string{"--cert", "a.crt"},
			env: map[string]string{"SPIFFE_ENDPOINT_SOCKET": sock}, wantCert: "a.crt"},
		{name: "standard variable beside BANK_CA is ignored", env: map[string]string{"SPIFFE_ENDPOINT_SOCKET": sock, "BANK_CA": "ca.crt"},
			wantCert: "certs/dev/test.crt"},
		{name: "flag and --cert", args: []string{"--spiffe-endpoint", sock, "--cert", "a.crt"},
			wantErr: "--spiffe-endpoint " + sock + " and --cert are two sources of the certificate"},
		{name: "BANK_ variable and --crl", args: []string{"--crl", "crl.pem"}, env: map[string]string{"BANK_SPIFFE_ENDPOINT": sock},
			wantErr: "and --crl are two sources"},
		{name: "flag and BANK_KEY", args: []string{"--spiffe-endpoint", sock}, env: map[string]string{"BANK_KEY": "k.pem"},
			wantErr: "and --key are two sources"},
		{name: "not a URI of a socket", args: []string{"--spiffe-endpoint", "/run/spire/agent.sock"}, wantErr: "endpoint \"/run/spire/agent.sock\""},
		{name: "TCP", args: []string{"--spiffe-endpoint", "tcp://127.0.0.1:8081"}, wantErr: "only a local agent's unix socket is accepted"},
		{name: "zero start timeout", args: []string{"--spiffe-endpoint", sock, "--spiffe-start-timeout", "0s"}, wantErr: "--spiffe-start-timeout 0s must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg service.Config
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			cfg.RegisterFlags(fs, service.Defaults{Name: "test", Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0"})
			if err := service.ParseFlags(fs, tt.args, func(k string) string { return tt.env[k] }); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if cfg.SPIFFEEndpoint != tt.wantEndpoint || cfg.Cert != tt.wantCert {
				t.Fatalf("endpoint %q, cert %q; want %q, %q", cfg.SPIFFEEndpoint, cfg.Cert, tt.wantEndpoint, tt.wantCert)
			}
			if cfg.UsesWorkloadAPI() && (cfg.Key != "" || cfg.CA != "" || cfg.Intermediates != "" || cfg.CRL != "" || cfg.CRLRequired()) {
				t.Fatalf("with the Workload API a file default survived: %+v", cfg)
			}
		})
	}
}

// workloadFixture is the fixture served from a Workload API instead of the files.
func workloadFixture(tb testing.TB) (*fixture, *workloadapitest.Server) {
	tb.Helper()
	f := newFixture(tb)
	agent := workloadapitest.New(tb)
	agent.Set(f.server, f.pki.Bundle)
	f.cfg.Cert, f.cfg.Key, f.cfg.CA, f.cfg.Intermediates, f.cfg.CRL = "", "", "", "", ""
	f.cfg.SPIFFEEndpoint = agent.Addr()
	f.cfg.SPIFFEStartTimeout = waitLimit
	return f, agent
}

// TestServiceOnWorkloadAPI: a service takes its certificate and bundle from the Workload
// API, serves with every check, presents each rotated SVID to the next connection,
// counts rotations and Workload API errors, and logs each rotation with both serials.
func TestServiceOnWorkloadAPI(t *testing.T) {
	f, agent := workloadFixture(t)
	r := f.start(t)
	alice := f.pki.Client(t, aliceID)
	serial, err := call(r.dial(t, alice))
	if err != nil || serial.Cmp(f.server.Cert.SerialNumber) != 0 {
		t.Fatalf("first call: serial %v, %v; want the SVID's %v", serial, err, f.server.Cert.SerialNumber)
	}
	// Every check of the files applies: a revoked-style refusal is not possible without a
	// CRL, but a peer of another CA and an expired one are refused.
	past := time.Now().Add(-2 * time.Hour)
	if _, err := call(r.dial(t, f.pki.Client(t, aliceID, pki.WithValidity(past, past.Add(time.Hour))))); err == nil {
		t.Fatal("an expired client was served")
	}

	next := f.pki.Server(t, serverID)
	agent.Set(next, f.pki.Bundle)
	waitFor(t, "the rotated SVID served", func() bool {
		s, err := call(r.dial(t, alice))
		return err == nil && s.Cmp(next.Cert.SerialNumber) == 0
	})
	if v, _ := r.metric(t, "bank_svid_rotations_total", nil); v != 1 {
		t.Errorf("bank_svid_rotations_total = %v, want 1", v)
	}
	if v, _ := r.metric(t, "bank_svid_expiry_timestamp_seconds", nil); v != float64(next.Cert.NotAfter.Unix()) {
		t.Errorf("bank_svid_expiry_timestamp_seconds = %v, want %d", v, next.Cert.NotAfter.Unix())
	}
	if !r.logs.contains("X.509-SVID rotated", pki.SerialHex(f.server.Cert.SerialNumber), pki.SerialHex(next.Cert.SerialNumber)) {
		t.Error("the rotation is not logged with the old and the new serial")
	}
	agent.Deny()
	waitFor(t, "a Workload API error counted", func() bool {
		v, _ := r.metric(t, "bank_workload_api_errors_total", nil)
		return v >= 1
	})
	if _, err := call(r.dial(t, alice)); err != nil {
		t.Fatalf("the SVID in hand stopped working when the agent stopped issuing: %v", err)
	}
	if code, body := get(t, r.metricsURL+"/readyz"); code != 200 || !strings.Contains(body, "SPIFFE Workload API") {
		t.Errorf("/readyz = %d %q, want ready and saying where revocation went", code, body)
	}
	// An SVID always expires within --expiry-warning (a week): warning about it is noise.
	if r.logs.contains("certificate expires soon") {
		t.Error("the expiry warning fired for an SVID")
	}
}

// TestServiceWithoutWorkloadIdentity: with no agent, or an agent without an entry for the
// service, the start gives up after the start timeout with the reason.
func TestServiceWithoutWorkloadIdentity(t *testing.T) {
	for _, tt := range []struct {
		name string
		addr func(tb testing.TB) string
		want error
	}{
		{name: "agent down", addr: func(tb testing.TB) string { return "unix://" + tb.TempDir() + "/agent.sock" }, want: svidsource.ErrUnreachable},
		{name: "no registration entry", addr: func(tb testing.TB) string { return workloadapitest.New(tb).Addr() }, want: svidsource.ErrNoIdentity},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := workloadFixture(t)
			f.cfg.SPIFFEEndpoint = tt.addr(t)
			f.cfg.SPIFFEStartTimeout = 1500 * time.Millisecond
			logs := &logBuffer{}
			rt, err := service.New(context.Background(), testService(&echoServer{}), f.cfg, slog.New(slog.NewJSONHandler(logs, nil)))
			if err == nil {
				rt.Close()
				t.Fatal("the service started without an identity")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("service.New: %v, want %v", err, tt.want)
			}
			if !logs.contains("waiting for an X.509-SVID from the SPIFFE Workload API", f.cfg.SPIFFEEndpoint) {
				t.Error("the wait is not logged")
			}
		})
	}
}
