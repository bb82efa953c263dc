package pki_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/pki"
)

// TestPKCS12FriendlyName round-trips files through go-pkcs12's decoder (which checks
// the MAC and decrypts the certificates that EncodePKCS12 re-encrypted) and reads the
// name back, for each key type, chain shape, kind of name and password.
func TestPKCS12FriendlyName(t *testing.T) {
	ca := newTestCA(t)
	inter := []*x509.Certificate{ca.inter.Cert}
	full := []*x509.Certificate{ca.inter.Cert, ca.root.Cert}
	tests := []struct {
		name     string
		kt       pki.KeyType
		alias    string
		caCerts  []*x509.Certificate
		password string
	}{
		{name: "ecdsa, leaf and intermediate", kt: pki.ECDSAP256, alias: "alice", caCerts: inter, password: "changeit"},
		{name: "rsa, full chain", kt: pki.RSA2048, alias: "alice", caCerts: full, password: "changeit"},
		{name: "ed25519, no CA certificates", kt: pki.Ed25519, alias: "alice", password: "changeit"},
		{name: "a SPIFFE ID as the name", kt: pki.ECDSAP256, alias: "spiffe://bank.local/customer/alice", caCerts: inter, password: "changeit"},
		{name: "non-ASCII name and password", kt: pki.ECDSAP256, alias: "Zoë Ñandú", caCerts: full, password: "pässwörd"},
		{name: "empty password", kt: pki.ECDSAP256, alias: "alice", caCerts: inter, password: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := ca.issue(t, pki.Request{CommonName: "alice", SPIFFEIDs: []string{"spiffe://bank.local/customer/alice"},
				Usage: pki.ClientAuth}, pki.WithKeyType(tt.kt))
			p12, err := pki.EncodePKCS12(leaf, tt.alias, tt.caCerts, tt.password)
			if err != nil {
				t.Fatalf("EncodePKCS12: %v", err)
			}
			got, gotCAs, err := pki.DecodePKCS12(p12, tt.password)
			if err != nil {
				t.Fatalf("DecodePKCS12: %v", err)
			}
			if !got.Cert.Equal(leaf.Cert) || pki.KeyMatches(leaf.Cert, got.Key) != nil {
				t.Error("round trip changed the leaf or its key")
			}
			if !slices.EqualFunc(gotCAs, tt.caCerts, (*x509.Certificate).Equal) {
				t.Errorf("round trip: %d CA certificates, want %d in the same order", len(gotCAs), len(tt.caCerts))
			}
			if name, err := pki.PKCS12FriendlyName(p12, tt.password); err != nil || name != tt.alias {
				t.Errorf("PKCS12FriendlyName = %q, %v; want %q", name, err, tt.alias)
			}
			if _, _, err := pki.DecodePKCS12(p12, tt.password+"x"); err == nil {
				t.Error("DecodePKCS12 with the wrong password succeeded")
			}
			if _, err := pki.PKCS12FriendlyName(p12, tt.password+"x"); !errors.Is(err, pki.ErrPKCS12MAC) {
				t.Errorf("PKCS12FriendlyName with the wrong password = %v, want ErrPKCS12MAC", err)
			}
		})
	}
}

func TestPKCS12Errors(t *testing.T) {
	ca := newTestCA(t)
	leaf := ca.issue(t, pki.Request{CommonName: "c", Usage: pki.ClientAuth})
	p12, err := pki.EncodePKCS12(leaf, "c", []*x509.Certificate{ca.inter.Cert, ca.root.Cert}, "s3cret")
	if err != nil {
		t.Fatalf("EncodePKCS12: %v", err)
	}
	got, caCerts, err := pki.DecodePKCS12(p12, "s3cret")
	if err != nil {
		t.Fatalf("DecodePKCS12: %v", err)
	}
	if len(caCerts) != 2 || len(got.Chain) != 2 || !got.Chain[1].Equal(ca.inter.Cert) {
		t.Errorf("decoded %d CA certs and a chain of %d; the chain must leave out the root", len(caCerts), len(got.Chain))
	}
	if _, _, err := pki.DecodePKCS12(p12, "changeit"); err == nil {
		t.Error("DecodePKCS12 with the wrong password succeeded")
	}
	if _, _, err := pki.DecodePKCS12([]byte("junk"), "s3cret"); err == nil {
		t.Error("DecodePKCS12 of junk succeeded")
	}

	t.Run("bad names", func(t *testing.T) {
		for _, name := range []string{"", "beyond the BMP \U0001F600", "not UTF-8 \xff"} {
			if _, err := pki.EncodePKCS12(leaf, name, nil, "s3cret"); !errors.Is(err, pki.ErrBadFriendlyName) {
				t.Errorf("EncodePKCS12(name %q) = %v, want ErrBadFriendlyName", name, err)
			}
		}
	})
	t.Run("password beyond the BMP", func(t *testing.T) {
		if _, err := pki.EncodePKCS12(leaf, "c", nil, "\U0001F600"); err == nil {
			t.Error("EncodePKCS12 with a password beyond U+FFFF succeeded")
		}
	})
	t.Run("malformed files", func(t *testing.T) {
		for _, data := range [][]byte{nil, []byte("junk"), p12[:len(p12)/2], append(bytes.Clone(p12), 0)} {
			if _, err := pki.PKCS12FriendlyName(data, "s3cret"); !errors.Is(err, pki.ErrPKCS12Format) {
				t.Errorf("PKCS12FriendlyName(%d bytes) = %v, want ErrPKCS12Format", len(data), err)
			}
		}
	})
}

// TestPKCS12Tampered changes single bytes across the file, the friendlyName among them
// (it sits in the unencrypted SafeContents): the MAC covers all of it, so both decoders
// refuse every altered file.
func TestPKCS12Tampered(t *testing.T) {
	ca := newTestCA(t)
	leaf := ca.issue(t, pki.Request{CommonName: "alice", Usage: pki.ClientAuth})
	p12, err := pki.EncodePKCS12(leaf, "alice", []*x509.Certificate{ca.inter.Cert}, "changeit")
	if err != nil {
		t.Fatalf("EncodePKCS12: %v", err)
	}
	nameAt := bytes.Index(p12, []byte("\x00a\x00l\x00i\x00c\x00e"))
	if nameAt < 0 {
		t.Fatal("the key bag's friendlyName is not in the file as a BMPString")
	}
	renamed := bytes.Clone(p12)
	renamed[nameAt+9] = 'f' // "alicf"
	tampered := map[string][]byte{"friendlyName renamed": renamed}
	for i := 0; i < len(p12); i += len(p12)/40 + 1 {
		b := bytes.Clone(p12)
		b[i] ^= 0x01
		tampered[fmt.Sprintf("bit 0 of byte %04d", i)] = b
	}
	for name, data := range tampered {
		t.Run(name, func(t *testing.T) {
			if _, _, err := pki.DecodePKCS12(data, "changeit"); err == nil {
				t.Error("DecodePKCS12 accepted the altered file")
			}
			if got, err := pki.PKCS12FriendlyName(data, "changeit"); !errors.Is(err, pki.ErrPKCS12MAC) && !errors.Is(err, pki.ErrPKCS12Format) {
				t.Errorf("PKCS12FriendlyName = %q, %v; want ErrPKCS12MAC or ErrPKCS12Format", got, err)
			}
		})
	}
	t.Run("openssl refuses the renamed file", func(t *testing.T) {
		path := writeTemp(t, "renamed.p12", renamed)
		out, err := run(t, "openssl", "pkcs12", "-info", "-nokeys", "-in", path, "-passin", "pass:changeit")
		if err == nil || !strings.Contains(out, "Mac verify error") {
			t.Errorf("openssl on the renamed file: %v\n%s", err, out)
		}
	})
}

// TestPKCS12OpenSSL reads the bag attributes as OpenSSL prints them: the key bag and the
// leaf's certificate bag carry the friendlyName and the same localKeyID, the CA
// certificates carry none.
func TestPKCS12OpenSSL(t *testing.T) {
	ca := newTestCA(t)
	leaf := ca.issue(t, pki.Request{CommonName: "alice", SPIFFEIDs: []string{"spiffe://bank.local/customer/alice"}, Usage: pki.ClientAuth})
	p12, err := pki.EncodePKCS12(leaf, "alice", []*x509.Certificate{ca.inter.Cert, ca.root.Cert}, "changeit")
	if err != nil {
		t.Fatalf("EncodePKCS12: %v", err)
	}
	path := writeTemp(t, "alice.p12", p12)

	out, err := run(t, "openssl", "pkcs12", "-info", "-nokeys", "-in", path, "-passin", "pass:changeit")
	if err != nil {
		t.Fatalf("openssl pkcs12 -nokeys: %v\n%s", err, out)
	}
	certs := opensslBags(out)
	if len(certs) != 3 {
		t.Fatalf("openssl printed %d certificate bags, want 3:\n%s", len(certs), out)
	}
	if certs[0].subject != "CN = alice" || certs[0].attrs["friendlyName"] != "alice" || certs[0].attrs["localKeyID"] == "" {
		t.Errorf("leaf certificate bag = %+v, want CN = alice with friendlyName alice and a localKeyID", certs[0])
	}
	for _, c := range certs[1:] {
		if len(c.attrs) != 0 {
			t.Errorf("CA certificate bag %q has attributes %v", c.subject, c.attrs)
		}
	}

	// -passout encrypts the key openssl prints: only the attributes matter here.
	out, err = run(t, "openssl", "pkcs12", "-info", "-nocerts", "-in", path, "-passin", "pass:changeit", "-passout", "pass:unused")
	if err != nil {
		t.Fatalf("openssl pkcs12 -nocerts: %v\n%s", err, out)
	}
	keys := opensslBags(out)
	if len(keys) != 1 || keys[0].attrs["friendlyName"] != "alice" || keys[0].attrs["localKeyID"] != certs[0].attrs["localKeyID"] {
		t.Errorf("key bags = %+v, want one with friendlyName alice and the leaf's localKeyID %q", keys, certs[0].attrs["localKeyID"])
	}

	if out, err := run(t, "openssl", "pkcs12", "-info", "-nokeys", "-in", path, "-passin", "pass:wrong"); err == nil {
		t.Errorf("openssl pkcs12 with the wrong password succeeded:\n%s", out)
	}
}

// opensslBag is one bag as `openssl pkcs12 -info` prints it.
type opensslBag struct {
	attrs   map[string]string
	subject string
}

// opensslBags parses the "Bag Attributes" blocks of `openssl pkcs12 -info`.
func opensslBags(out string) []opensslBag {
	var bags []opensslBag
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "Bag Attributes"):
			bags = append(bags, opensslBag{attrs: map[string]string{}})
		case len(bags) > 0 && strings.HasPrefix(line, "    "):
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok {
				bags[len(bags)-1].attrs[k] = strings.TrimSpace(v)
			}
		case len(bags) > 0 && strings.HasPrefix(line, "subject="):
			bags[len(bags)-1].subject = strings.TrimPrefix(line, "subject=")
		}
	}
	return bags
}

// run runs a tool (skipping the test if it is not installed) and returns its combined
// output and error.
func run(tb testing.TB, name string, args ...string) (string, error) {
	tb.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		tb.Skipf("%s not installed: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

func writeTemp(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
