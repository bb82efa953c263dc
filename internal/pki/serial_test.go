package pki_test

import (
	"context"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/pki"
)

// TestSerialHexMatchesOpenSSL issues certificates with serials that stress the format
// (one digit, a leading zero nibble, a high bit that DER pads with a zero byte, a long
// random one) and compares SerialHex with what `openssl x509 -noout -serial` prints for
// the same certificate.
func TestSerialHexMatchesOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: SerialHex is not compared with its output")
	}
	ca := newTestCA(t)
	random := ca.issue(t, pki.Request{CommonName: "alice", SPIFFEIDs: []string{"spiffe://bank.local/user/random"}, Usage: pki.ClientAuth})
	tests := []struct {
		name   string
		serial *big.Int // nil: the random serial pki makes by default
	}{
		{name: "one", serial: big.NewInt(1)},
		{name: "one nibble", serial: big.NewInt(0xF)},
		{name: "odd number of digits", serial: big.NewInt(0xABC)},
		{name: "high bit set (DER pads it)", serial: big.NewInt(0x80)},
		{name: "leading zero nibble, 17 bytes", serial: mustHex(t, "0fabcdef0123456789abcdef0123456789")},
		{name: "20 bytes with the high bit", serial: mustHex(t, "ffeeddccbbaa99887766554433221100ffeeddcc")},
		{name: "random default", serial: random.Cert.SerialNumber},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := ca.issue(t, pki.Request{CommonName: "alice", SPIFFEIDs: []string{"spiffe://bank.local/user/alice"}, Usage: pki.ClientAuth},
				pki.WithSerial(tt.serial))
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".crt")
			if err := os.WriteFile(path, pki.EncodeCertsPEM(leaf.Cert), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "x509", "-noout", "-serial", "-in", path).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl x509 -serial: %v\n%s", err, out)
			}
			if got, want := "serial="+pki.SerialHex(leaf.Cert.SerialNumber), strings.TrimSpace(string(out)); got != want {
				t.Errorf("SerialHex(%s) printed as %q, openssl prints %q", leaf.Cert.SerialNumber.Text(16), got, want)
			}
		})
	}
}

// TestSerialHexEdges covers the serials that no certificate Go makes can carry: zero,
// negative (openssl prints "-" and the magnitude in whole bytes) and nil.
func TestSerialHexEdges(t *testing.T) {
	tests := []struct {
		name   string
		serial *big.Int
		want   string
	}{
		{name: "nil", serial: nil, want: ""},
		{name: "zero", serial: big.NewInt(0), want: "00"},
		{name: "negative odd digits", serial: big.NewInt(-5), want: "-05"},
		{name: "negative", serial: big.NewInt(-0x1234), want: "-1234"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pki.SerialHex(tt.serial); got != tt.want {
				t.Errorf("SerialHex(%v) = %q, want %q", tt.serial, got, tt.want)
			}
		})
	}
}

func mustHex(tb testing.TB, s string) *big.Int {
	tb.Helper()
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		tb.Fatalf("bad hex %q", s)
	}
	return n
}
