package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"mtlsbank/internal/devpki"
)

// TestRun drives certgen like a user would, one command after another in one directory.
func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	files := 3*len(devpki.Names()) + 8 // leaves + ca.crt crl.pem rogue-ca.crt + 5 in ca/
	tests := []struct {
		name      string
		args      []string
		wantErr   string // substring of the error; "" = success
		wantLines int
		wantEach  string // prefix every output line must have
		wantOut   string // substring of the output
	}{
		{name: "plain certgen creates everything", args: []string{}, wantLines: files, wantEach: "wrote " + dir},
		{name: "init again keeps everything", args: []string{"init"}, wantLines: files, wantEach: "kept  " + dir},
		{name: "issue a new name", args: []string{"issue", "zed", "--spiffe-id", "spiffe://bank.local/customer/zed", "--ttl", "1h"}, wantLines: 3, wantEach: "wrote " + dir, wantOut: "zed.p12 (new)"},
		{name: "rotate a service", args: []string{"issue", "accounts"}, wantLines: 3, wantEach: "wrote " + dir, wantOut: "accounts.crt (rotated)"},
		{name: "revoke", args: []string{"revoke", "zed"}, wantLines: 1, wantOut: "crl.pem (revoked zed serial "},
		{name: "revoke twice", args: []string{"revoke", "zed"}, wantLines: 1, wantOut: "already revoked"},
		{name: "p12 password", args: []string{"--p12-password", "s3cret"}, wantLines: files, wantOut: "wrote " + filepath.Join(dir, "alice.p12")},
		{name: "force", args: []string{"init", "--force", "--key-type", "ed25519"}, wantLines: files, wantEach: "wrote " + dir},
		{name: "unknown name without an ID", args: []string{"issue", "nobody"}, wantErr: "--spiffe-id"},
		{name: "bad SPIFFE ID", args: []string{"issue", "nobody", "--spiffe-id", "bank.local/customer/x"}, wantErr: "bad SPIFFE ID"},
		{name: "other trust domain", args: []string{"issue", "nobody", "--spiffe-id", "spiffe://evil.example/customer/x"}, wantErr: "not in trust domain bank.local"},
		{name: "unknown key type", args: []string{"--key-type", "dsa"}, wantErr: "unknown key type"},
		{name: "issue without a name", args: []string{"issue"}, wantErr: "accepts 1 arg"},
		{name: "stray argument", args: []string{"alice"}, wantErr: "unknown command"},
		{name: "revoke a rogue", args: []string{"revoke", "rogue"}, wantErr: "not issued by the dev intermediate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), append(tt.args, "--dir", dir), &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("run(%v) = %v, want an error mentioning %q\n%s", tt.args, err, tt.wantErr, out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("run(%v): %v\n%s", tt.args, err, out.String())
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != tt.wantLines {
				t.Errorf("%d lines, want %d:\n%s", len(lines), tt.wantLines, out.String())
			}
			for _, line := range lines {
				if !strings.HasPrefix(line, tt.wantEach) {
					t.Errorf("line %q does not start with %q", line, tt.wantEach)
				}
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
		})
	}
}
