package auditlog_test

import (
	"bytes"
	"crypto"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	_ "mtlsbank/gen/bank/accounts/v1" // registers the methods NoSideEffects looks up
	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/auditlog/auditlogtest"
)

const (
	readMethod  = "/bank.accounts.v1.AccountsService/GetAccount"
	writeMethod = "/bank.accounts.v1.AccountsService/Transfer"
)

// newKey returns a fresh Ed25519 signing key.
func newKey(tb testing.TB) crypto.Signer { return auditlogtest.NewKey(tb) }

// open opens a sink on path, closed at the end of the test.
func open(tb testing.TB, path string, key crypto.Signer, opts ...auditlog.Option) *auditlog.Sink {
	tb.Helper()
	s, err := auditlog.Open(path, "accounts", key, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// record returns a record of method with a marker in its rule, to find it in the file.
func record(method string, allowed bool, marker string) *auditlog.Record {
	code := codes.OK
	if !allowed {
		code = codes.PermissionDenied
	}
	return &auditlog.Record{
		Time: time.Now(), Method: method, Allowed: allowed, Code: code, Duration: 1500 * time.Microsecond,
		SPIFFEID: "spiffe://bank.local/customer/alice", Roles: []string{"customer"}, Rule: marker,
		Serial: "01AB", Peer: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242},
	}
}

func write(tb testing.TB, s *auditlog.Sink, r *auditlog.Record) {
	tb.Helper()
	if err := s.Write(r); err != nil {
		tb.Fatal(err)
	}
}

// verify runs Verify over the trail of path (rotated files and checkpoint file included).
func verify(tb testing.TB, path string, key crypto.Signer) auditlog.Report {
	tb.Helper()
	files, err := auditlog.RotatedFiles(path)
	if err != nil {
		tb.Fatal(err)
	}
	cp, err := os.ReadFile(auditlog.CheckpointPath(path))
	if err != nil {
		tb.Fatal(err)
	}
	rep, err := auditlog.Verify(append(files, path), key.Public(), cp)
	if err != nil {
		tb.Fatal(err)
	}
	return rep
}

// lines returns the lines of the file at path.
func lines(tb testing.TB, path string) [][]byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.SplitAfter(data, []byte("\n"))[:bytes.Count(data, []byte("\n"))]
}

func parse(tb testing.TB, raw []byte) auditlog.Line {
	tb.Helper()
	l, err := auditlog.ParseLine(bytes.TrimSuffix(raw, []byte("\n")))
	if err != nil {
		tb.Fatalf("%v: %s", err, raw)
	}
	return l
}

func auditPath(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "accounts.audit.jsonl")
}
