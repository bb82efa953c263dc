package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"mtlsbank/internal/auditlog"
)

// writeTrail writes a real audit trail of the accounts service in dir (records, a
// rotation, checkpoints) with its key pair in dir/certs, and returns the trail's files.
func writeTrail(tb testing.TB, dir string) []string {
	tb.Helper()
	certs := filepath.Join(dir, "certs")
	if err := os.Mkdir(certs, 0o700); err != nil {
		tb.Fatal(err)
	}
	keyPath := filepath.Join(certs, "accounts-audit.key")
	if err := auditlog.WriteKeyPair(keyPath, filepath.Join(certs, "accounts-audit.pub")); err != nil {
		tb.Fatal(err)
	}
	key, err := auditlog.LoadSigningKey(keyPath)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "accounts.audit.jsonl")
	s, err := auditlog.Open(path, "accounts", key, auditlog.WithMaxFileSize(2<<10), auditlog.WithFlushInterval(0))
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 12 {
		r := &auditlog.Record{Time: time.Now(), Method: "/bank.accounts.v1.AccountsService/Deposit", Allowed: i%4 != 0,
			Code: codes.OK, SPIFFEID: "spiffe://bank.local/teller/tina", Rule: "tellers"}
		if !r.Allowed {
			r.Code = codes.PermissionDenied
		}
		if err := s.Write(r); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	rotated, err := auditlog.RotatedFiles(path)
	if err != nil || len(rotated) == 0 {
		tb.Fatalf("no rotated files (%v)", err)
	}
	return append(rotated, path)
}

func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	files := writeTrail(t, dir)
	active := files[len(files)-1]
	certsDir := "--certs-dir=" + filepath.Join(dir, "certs")

	r := runCLI(t, nil, append([]string{certsDir, "audit", "verify"}, files...)...)
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "OK  accounts: 12 records in") || !strings.Contains(r.stdout, "nothing cut off") {
		t.Fatalf("intact trail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Without the oldest file, the chain does not start at 1.
	r = runCLI(t, nil, append([]string{certsDir, "audit", "verify", "--no-checkpoint"}, files[1:]...)...)
	if r.code != ExitFailure || !strings.Contains(r.stdout, "removed") {
		t.Errorf("trail without its first file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Cut off the tail (the closing checkpoint): the checkpoint file names a record that
	// is gone.
	data, err := os.ReadFile(active)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if err := os.WriteFile(active, bytes.Join(lines[:len(lines)-2], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, append([]string{certsDir, "-o", "json", "audit", "verify"}, files...)...)
	if r.code != ExitFailure {
		t.Fatalf("truncated trail: exit %d, want %d\n%s%s", r.code, ExitFailure, r.stdout, r.stderr)
	}
	var out verifyJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if out.OK || out.Break == nil || out.Break.Kind != auditlog.Truncated || out.Records != 12 || out.LastSeq != 12 {
		t.Errorf("truncated trail reported as %+v (break %+v)", out, out.Break)
	}
	if e := jsonError(t, r); e.Error.Kind != KindAuditBroken {
		t.Errorf("error kind %s", e.Error.Kind)
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	dir := t.TempDir()
	files := writeTrail(t, dir)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no public key", []string{"--certs-dir", t.TempDir(), "audit", "verify", files[0]}, "accounts-audit.pub"},
		{"a private key as public key", []string{"audit", "verify", "--public-key", filepath.Join(dir, "certs", "accounts-audit.key"), files[0]}, "PRIVATE KEY"},
		{"missing file", []string{"audit", "verify", filepath.Join(dir, "nope.jsonl")}, "nope.jsonl"},
		{"not an audit file", []string{"audit", "verify", filepath.Join(dir, "certs", "accounts-audit.pub")}, "first line"},
		{"both checkpoint flags", []string{"audit", "verify", "--checkpoint", "x", "--no-checkpoint", files[0]}, "alternatives"},
		{"no file", []string{"audit", "verify"}, "arg"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, tt.args...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, want %d and %q in:\n%s", r.code, ExitUsage, tt.want, r.stderr)
			}
		})
	}
}
