package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/devpki"
)

// TestRun drives certgen like a user would, one command after another in one directory.
func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	files := 3*len(devpki.Names()) + 10 + len(devpki.AuditKeyFiles()) // leaves + ca.crt intermediates.crt crl.pem rogue-ca.crt + 6 in ca/ + audit keys
	tests := []struct {
		name      string
		args      []string
		wantErr   string // substring of the error; "" = success
		wantLines int
		wantEach  string // prefix every output line must have
		wantOut   string // substring of the output
		dir       string // "" = the shared directory
	}{
		{name: "plain certgen creates everything", args: []string{}, wantLines: files, wantEach: "wrote " + dir},
		{name: "init again keeps everything, in one line", args: []string{"init"}, wantLines: 1, wantEach: "kept  " + dir,
			wantOut: fmt.Sprintf("kept  %s: all %d files are valid, nothing to do", dir, files)},
		{name: "issue a new name", args: []string{"issue", "zed", "--spiffe-id", "spiffe://bank.local/customer/zed", "--ttl", "1h"}, wantLines: 3, wantEach: "wrote " + dir, wantOut: "zed.p12 (new)"},
		{name: "rotate a service", args: []string{"issue", "accounts"}, wantLines: 3, wantEach: "wrote " + dir, wantOut: "accounts.crt (rotated)"},
		{name: "revoke", args: []string{"revoke", "zed"}, wantLines: 2, wantEach: "wrote " + dir, wantOut: "crl.pem (revoked zed serial "},
		{name: "revoke twice", args: []string{"revoke", "zed"}, wantLines: 1, wantOut: "already revoked"},
		{name: "p12 password rewrites the .p12 files only", args: []string{"--p12-password", "s3cret"}, wantLines: len(devpki.Names()) + 1,
			wantOut: "wrote " + filepath.Join(dir, "alice.p12") + " (stale or other password)"},
		{name: "p12 password: the rest in one line", args: []string{"--p12-password", "s3cret2"}, wantLines: len(devpki.Names()) + 1,
			wantOut: fmt.Sprintf("kept  %s: %d other files, still valid\n", dir, files-len(devpki.Names()))},
		// selfsigned.p12 has no root to add; the other files go in the count line.
		{name: "p12 full chain rewrites the .p12 files with a root to add", args: []string{"--p12-password", "s3cret2", "--p12-full-chain"},
			wantLines: len(devpki.Names()), wantOut: "wrote " + filepath.Join(dir, "alice.p12") + " (other CA certificates)"},
		{name: "p12 full chain again keeps everything, in one line", args: []string{"--p12-password", "s3cret2", "--p12-full-chain"}, wantLines: 1,
			wantOut: fmt.Sprintf("kept  %s: all %d files are valid, nothing to do", dir, files)},
		{name: "crl with nothing due prints nothing", args: []string{"crl"}, wantLines: 0},
		{name: "crl forced", args: []string{"crl", "--force"}, wantLines: 1, wantOut: "wrote " + filepath.Join(dir, "crl.pem") + " (forced)"},
		{name: "crl validity too short", args: []string{"crl", "--crl-validity", "1s"}, wantErr: "bad validity window"},
		{name: "rollover", args: []string{"rollover"}, wantLines: 5, wantEach: "wrote " + dir, wantOut: "ca/intermediate-2.crt (rollover"},
		{name: "cas", args: []string{"cas"}, wantLines: 3, wantOut: "intermediate-2   serial"},
		{name: "issue after rollover", args: []string{"issue", "alice"}, wantLines: 3, wantEach: "wrote " + dir},
		{name: "revoke the old intermediate", args: []string{"revoke-ca", "intermediate"}, wantLines: 2, wantEach: "wrote " + dir, wantOut: "crl.pem (revoked intermediate intermediate serial "},
		{name: "revoke the issuing intermediate", args: []string{"revoke-ca", "intermediate-2"}, wantErr: "run `certgen rollover` first"},
		{name: "revoke the root", args: []string{"revoke-ca", "root"}, wantErr: "the root cannot be revoked"},
		{name: "revoke an unknown CA", args: []string{"revoke-ca", "nope"}, wantErr: `unknown CA "nope": the dev CAs are [root intermediate intermediate-2]`},
		{name: "revoke-ca without a name", args: []string{"revoke-ca"}, wantErr: "accepts 1 arg"},
		// --force keeps the audit keys (one "kept" line): a new one would not verify the trails the old one signed.
		{name: "force", args: []string{"init", "--force", "--key-type", "ed25519"}, wantLines: files + 2 - len(devpki.AuditKeyFiles()) + 1, wantOut: "removed " + filepath.Join(dir, "ca/intermediate-2.key")},
		{name: "unknown name without an ID", args: []string{"issue", "nobody"}, wantErr: "--spiffe-id"},
		{name: "bad SPIFFE ID", args: []string{"issue", "nobody", "--spiffe-id", "bank.local/customer/x"}, wantErr: "bad SPIFFE ID"},
		{name: "other trust domain", args: []string{"issue", "nobody", "--spiffe-id", "spiffe://evil.example/customer/x"}, wantErr: "not in trust domain bank.local"},
		{name: "unknown key type", args: []string{"--key-type", "dsa"}, wantErr: "unknown key type"},
		{name: "issue without a name", args: []string{"issue"}, wantErr: "accepts 1 arg"},
		{name: "stray argument", args: []string{"alice"}, wantErr: "unknown command"},
		{name: "revoke a rogue", args: []string{"revoke", "rogue"}, wantErr: "not issued by the dev intermediate"},
		{name: "rollover without a PKI", args: []string{"rollover"}, dir: filepath.Join(dir, "nothing"), wantErr: "no dev CA"},
		{name: "crl without a PKI", args: []string{"crl"}, dir: filepath.Join(dir, "nothing"), wantErr: "no dev CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			runDir := dir
			if tt.dir != "" {
				runDir = tt.dir
			}
			err := run(context.Background(), append(tt.args, "--dir", runDir), &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("run(%v) = %v, want an error mentioning %q\n%s", tt.args, err, tt.wantErr, out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("run(%v): %v\n%s", tt.args, err, out.String())
			}
			var lines []string
			if out.Len() > 0 {
				lines = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			}
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

// TestSerialsAsOpenSSLPrints checks that the serials certgen prints (revoke, revoke-ca,
// cas) are the ones `openssl x509 -noout -serial` prints for the same files, so that a
// user can match them: upper-case hex of whole bytes.
func TestSerialsAsOpenSSLPrints(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: certgen's serials are not compared with its output")
	}
	dir := filepath.Join(t.TempDir(), "dev")
	certgen := func(tb testing.TB, args ...string) string {
		tb.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append(args, "--dir", dir), &out); err != nil {
			tb.Fatalf("certgen %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	opensslSerial := func(tb testing.TB, file string) string {
		tb.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "x509", "-noout", "-serial", "-in", filepath.Join(dir, file)).CombinedOutput()
		if err != nil {
			tb.Fatalf("openssl x509 -serial %s: %v\n%s", file, err, out)
		}
		serial, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "serial=")
		if !ok || serial == "" {
			tb.Fatalf("openssl printed %q", out)
		}
		return serial
	}
	certgen(t)
	tests := []struct {
		name string
		file string   // whose serial openssl prints
		args []string // the certgen command that prints it
		want string   // the text around the serial: %s is the serial
	}{
		{name: "cas lists the intermediate", file: "ca/intermediate.crt", args: []string{"cas"}, want: "intermediate     serial %s  "},
		{name: "cas lists the root", file: "ca.crt", args: []string{"cas"}, want: "root             serial %s  "},
		{name: "revoke a leaf", file: "bob.crt", args: []string{"revoke", "bob"}, want: "(revoked bob serial %s)"},
		{name: "revoke it again", file: "bob.crt", args: []string{"revoke", "bob"}, want: "serial %s already revoked"},
		{name: "revoke an old intermediate", file: "ca/intermediate.crt", args: []string{"revoke-ca", "intermediate"},
			want: "(revoked intermediate intermediate serial %s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := fmt.Sprintf(tt.want, opensslSerial(t, tt.file))
			if tt.args[0] == "revoke-ca" {
				certgen(t, "rollover") // the issuing intermediate cannot be revoked
			}
			if out := certgen(t, tt.args...); !strings.Contains(out, want) {
				t.Errorf("certgen %v printed\n%s\nwant it to contain %q (openssl's serial)", tt.args, out, want)
			}
		})
	}
}
