package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"mtlsbank/internal/pki"
)

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    pki.KeyType
		wantErr bool
	}{
		{name: "ecdsa", in: "ecdsa-p256", want: pki.ECDSAP256},
		{name: "rsa 2048", in: "rsa-2048", want: pki.RSA2048},
		{name: "rsa 3072 upper case", in: " RSA-3072 ", want: pki.RSA3072},
		{name: "ed25519", in: "ed25519", want: pki.Ed25519},
		{name: "rsa 1024", in: "rsa-1024", want: pki.RSA1024},
		{name: "empty", in: "", wantErr: true},
		{name: "rsa 4096", in: "rsa-4096", wantErr: true},
		{name: "bare ecdsa", in: "ecdsa", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.ParseKeyType(tt.in)
			if tt.wantErr {
				if !errors.Is(err, pki.ErrUnknownKeyType) {
					t.Fatalf("ParseKeyType(%q) = %q, %v; want ErrUnknownKeyType", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseKeyType(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCAProfiles(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name        string
		ca          *pki.CA
		maxPathLen  int
		issuer      *x509.Certificate
		chainLength int
	}{
		{name: "root", ca: ca.root, maxPathLen: 1, issuer: ca.root.Cert, chainLength: 1},
		{name: "intermediate", ca: ca.inter, maxPathLen: 0, issuer: ca.root.Cert, chainLength: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.ca.Cert
			if !c.BasicConstraintsValid || !c.IsCA {
				t.Errorf("BasicConstraints valid=%v CA=%v, want CA", c.BasicConstraintsValid, c.IsCA)
			}
			if c.MaxPathLen != tt.maxPathLen || (tt.maxPathLen == 0 && !c.MaxPathLenZero) {
				t.Errorf("MaxPathLen = %d (zero=%v), want %d", c.MaxPathLen, c.MaxPathLenZero, tt.maxPathLen)
			}
			if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; c.KeyUsage != want {
				t.Errorf("KeyUsage = %v, want %v", c.KeyUsage, want)
			}
			if len(c.ExtKeyUsage) != 0 {
				t.Errorf("ExtKeyUsage = %v, want none", c.ExtKeyUsage)
			}
			if len(c.SubjectKeyId) == 0 {
				t.Error("no SubjectKeyId")
			}
			if err := pki.SignedBy(c, tt.issuer); err != nil {
				t.Errorf("SignedBy: %v", err)
			}
			if len(tt.ca.Chain) != tt.chainLength || tt.ca.Chain[0] != c {
				t.Errorf("Chain = %d certs, want %d starting with the CA itself", len(tt.ca.Chain), tt.chainLength)
			}
			if kt, err := pki.KeyTypeOf(c.PublicKey); err != nil || kt != pki.ECDSAP256 {
				t.Errorf("key type = %q, %v; want default %q", kt, err, pki.ECDSAP256)
			}
			if life := c.NotAfter.Sub(c.NotBefore); life < pki.DefaultCATTL {
				t.Errorf("lifetime %s, want default %s", life, pki.DefaultCATTL)
			}
		})
	}
}

func TestIssueProfiles(t *testing.T) {
	ca := newTestCA(t)
	const alice = "spiffe://bank.local/customer/alice"
	tests := []struct {
		name      string
		req       pki.Request
		wantEKU   []x509.ExtKeyUsage
		wantKU    x509.KeyUsage
		wantCA    bool
		serverOK  bool
		clientOK  bool
		wantURIs  []string
		wantDNS   []string
		wantIPs   []string
		wantOrgs  []string
		wantUnits []string
	}{
		{
			name:     "client",
			req:      pki.Request{CommonName: "alice", SPIFFEIDs: []string{alice}, Usage: pki.ClientAuth},
			wantEKU:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			wantKU:   x509.KeyUsageDigitalSignature,
			clientOK: true,
			wantURIs: []string{alice},
		},
		{
			name: "server and client",
			req: pki.Request{
				CommonName: "accounts", Org: []string{"mtlsbank"}, OrgUnit: []string{"services"},
				SPIFFEIDs: []string{"spiffe://bank.local/service/accounts"},
				DNSNames:  []string{"localhost", "accounts"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
				Usage: pki.ServerAuth | pki.ClientAuth,
			},
			wantEKU:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			wantKU:    x509.KeyUsageDigitalSignature,
			serverOK:  true,
			clientOK:  true,
			wantURIs:  []string{"spiffe://bank.local/service/accounts"},
			wantDNS:   []string{"localhost", "accounts"},
			wantIPs:   []string{"127.0.0.1"},
			wantOrgs:  []string{"mtlsbank"},
			wantUnits: []string{"services"},
		},
		{
			name:     "server only",
			req:      pki.Request{CommonName: "serveronly", SPIFFEIDs: []string{alice}, Usage: pki.ServerAuth},
			wantEKU:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			wantKU:   x509.KeyUsageDigitalSignature,
			serverOK: true,
			wantURIs: []string{alice},
		},
		{
			// crypto/x509 treats a leaf without EKU as good for anything.
			name:     "no EKU",
			req:      pki.Request{CommonName: "noeku", SPIFFEIDs: []string{alice}},
			wantKU:   x509.KeyUsageDigitalSignature,
			serverOK: true,
			clientOK: true,
			wantURIs: []string{alice},
		},
		{
			name:     "CA presented as a leaf",
			req:      pki.Request{CommonName: "cacert", SPIFFEIDs: []string{alice}, Usage: pki.ClientAuth, IsCA: true},
			wantEKU:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			wantKU:   x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			wantCA:   true,
			clientOK: true,
			wantURIs: []string{alice},
		},
		{
			name:     "two SPIFFE IDs",
			req:      pki.Request{CommonName: "two", SPIFFEIDs: []string{alice, "spiffe://bank.local/teller/tina"}, Usage: pki.ClientAuth},
			wantEKU:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			wantKU:   x509.KeyUsageDigitalSignature,
			clientOK: true,
			wantURIs: []string{alice, "spiffe://bank.local/teller/tina"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := ca.issue(t, tt.req)
			c := leaf.Cert
			if !c.BasicConstraintsValid || c.IsCA != tt.wantCA {
				t.Errorf("BasicConstraints valid=%v CA=%v, want CA=%v", c.BasicConstraintsValid, c.IsCA, tt.wantCA)
			}
			if c.KeyUsage != tt.wantKU {
				t.Errorf("KeyUsage = %v, want %v", c.KeyUsage, tt.wantKU)
			}
			if !slices.Equal(c.ExtKeyUsage, tt.wantEKU) {
				t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, tt.wantEKU)
			}
			var uris, ips []string
			for _, u := range c.URIs {
				uris = append(uris, u.String())
			}
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(uris, tt.wantURIs) || !slices.Equal(c.DNSNames, tt.wantDNS) || !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("SANs URI=%v DNS=%v IP=%v, want %v %v %v", uris, c.DNSNames, ips, tt.wantURIs, tt.wantDNS, tt.wantIPs)
			}
			if c.Subject.CommonName != tt.req.CommonName || !slices.Equal(c.Subject.Organization, tt.wantOrgs) ||
				!slices.Equal(c.Subject.OrganizationalUnit, tt.wantUnits) {
				t.Errorf("Subject = %q, want CN=%s O=%v OU=%v", c.Subject, tt.req.CommonName, tt.wantOrgs, tt.wantUnits)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %x is not a positive 128-bit number", c.SerialNumber)
			}
			if !bytes.Equal(c.AuthorityKeyId, ca.inter.Cert.SubjectKeyId) {
				t.Errorf("AuthorityKeyId %x, want the intermediate's %x", c.AuthorityKeyId, ca.inter.Cert.SubjectKeyId)
			}
			if len(leaf.Chain) != 2 || leaf.Chain[0] != c || leaf.Chain[1] != ca.inter.Cert {
				t.Errorf("Chain has %d certs, want leaf then intermediate", len(leaf.Chain))
			}
			if err := ca.verify(leaf, x509.ExtKeyUsageServerAuth, time.Time{}); (err == nil) != tt.serverOK {
				t.Errorf("verify for serverAuth: %v, want ok=%v", err, tt.serverOK)
			}
			if err := ca.verify(leaf, x509.ExtKeyUsageClientAuth, time.Time{}); (err == nil) != tt.clientOK {
				t.Errorf("verify for clientAuth: %v, want ok=%v", err, tt.clientOK)
			}
		})
	}
}

func TestIssueWrongEKUReason(t *testing.T) {
	ca := newTestCA(t)
	leaf := ca.issue(t, pki.Request{CommonName: "c", Usage: pki.ClientAuth})
	err := ca.verify(leaf, x509.ExtKeyUsageServerAuth, time.Time{})
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.IncompatibleUsage {
		t.Fatalf("verify client cert for serverAuth: %v, want IncompatibleUsage", err)
	}
}

func TestIssueSerials(t *testing.T) {
	ca := newTestCA(t)
	a := ca.issue(t, pki.Request{CommonName: "a", Usage: pki.ClientAuth})
	b := ca.issue(t, pki.Request{CommonName: "b", Usage: pki.ClientAuth})
	if a.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) == 0 {
		t.Errorf("two leaves share serial %x", a.Cert.SerialNumber)
	}
	fixed := ca.issue(t, pki.Request{CommonName: "c", Usage: pki.ClientAuth}, pki.WithSerial(big.NewInt(4242)))
	if fixed.Cert.SerialNumber.Int64() != 4242 {
		t.Errorf("WithSerial(4242) gave %x", fixed.Cert.SerialNumber)
	}
	if _, err := ca.inter.Issue(pki.Request{CommonName: "d"}, pki.WithSerial(big.NewInt(0))); err == nil {
		t.Error("WithSerial(0) succeeded, want an error")
	}
}

func TestValidityWindows(t *testing.T) {
	base := time.Now().Truncate(time.Second)
	ca := newTestCA(t, pki.WithValidity(base.Add(-365*24*time.Hour), base.Add(365*24*time.Hour)))
	clock := func() time.Time { return base }
	tests := []struct {
		name                string
		opts                []pki.Option
		wantFrom, wantUntil time.Time
		validAt, invalidAt  []time.Time
		wantErr             bool
	}{
		{
			name:      "expired yesterday",
			opts:      []pki.Option{pki.WithValidity(base.Add(-48*time.Hour), base.Add(-24*time.Hour))},
			wantFrom:  base.Add(-48 * time.Hour),
			wantUntil: base.Add(-24 * time.Hour),
			validAt:   []time.Time{base.Add(-36 * time.Hour)},
			invalidAt: []time.Time{base, base.Add(-24*time.Hour + time.Second)},
		},
		{
			name:      "not yet valid",
			opts:      []pki.Option{pki.WithValidity(base.Add(24*time.Hour), base.Add(48*time.Hour))},
			wantFrom:  base.Add(24 * time.Hour),
			wantUntil: base.Add(48 * time.Hour),
			validAt:   []time.Time{base.Add(24 * time.Hour), base.Add(47 * time.Hour)},
			invalidAt: []time.Time{base, base.Add(24*time.Hour - time.Second), base.Add(48*time.Hour + time.Second)},
		},
		{
			name:      "ttl from clock",
			opts:      []pki.Option{pki.WithClock(clock), pki.WithTTL(time.Hour)},
			wantFrom:  base.Add(-time.Minute),
			wantUntil: base.Add(time.Hour),
			validAt:   []time.Time{base.Add(-time.Minute), base, base.Add(time.Hour)},
			invalidAt: []time.Time{base.Add(-2 * time.Minute), base.Add(time.Hour + time.Second)},
		},
		{
			name:      "default ttl",
			opts:      []pki.Option{pki.WithClock(clock)},
			wantFrom:  base.Add(-time.Minute),
			wantUntil: base.Add(pki.DefaultLeafTTL),
		},
		{
			name:      "last of ttl and validity wins",
			opts:      []pki.Option{pki.WithClock(clock), pki.WithTTL(time.Hour), pki.WithValidity(base, base.Add(2*time.Hour))},
			wantFrom:  base,
			wantUntil: base.Add(2 * time.Hour),
		},
		{name: "inverted window", opts: []pki.Option{pki.WithValidity(base, base.Add(-time.Hour))}, wantErr: true},
		{name: "empty window", opts: []pki.Option{pki.WithValidity(base, base)}, wantErr: true},
		{name: "negative ttl", opts: []pki.Option{pki.WithTTL(-time.Hour)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, err := ca.inter.Issue(pki.Request{CommonName: "w", Usage: pki.ClientAuth}, tt.opts...)
			if tt.wantErr {
				if !errors.Is(err, pki.ErrBadValidity) {
					t.Fatalf("Issue = %v, want ErrBadValidity", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if !leaf.Cert.NotBefore.Equal(tt.wantFrom) || !leaf.Cert.NotAfter.Equal(tt.wantUntil) {
				t.Errorf("window %s..%s, want %s..%s", leaf.Cert.NotBefore, leaf.Cert.NotAfter, tt.wantFrom, tt.wantUntil)
			}
			for _, at := range tt.validAt {
				if err := ca.verify(leaf, x509.ExtKeyUsageClientAuth, at); err != nil {
					t.Errorf("verify at %s: %v, want ok", at, err)
				}
			}
			for _, at := range tt.invalidAt {
				err := ca.verify(leaf, x509.ExtKeyUsageClientAuth, at)
				var invalid x509.CertificateInvalidError
				if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
					t.Errorf("verify at %s: %v, want an Expired (outside validity) error", at, err)
				}
			}
		})
	}
}

func TestCRL(t *testing.T) {
	ca := newTestCA(t)
	revoked := ca.issue(t, pki.Request{CommonName: "revoked", Usage: pki.ClientAuth})
	kept := ca.issue(t, pki.Request{CommonName: "kept", Usage: pki.ClientAuth})
	now := time.Now().Truncate(time.Second)
	der, err := ca.inter.CreateCRL([]*big.Int{revoked.Cert.SerialNumber, big.NewInt(99)}, big.NewInt(7), now, now.Add(time.Hour))
	if err != nil {
		t.Fatalf("CreateCRL: %v", err)
	}
	tampered := bytes.Clone(der)
	tampered[len(tampered)-3] ^= 0xff

	tests := []struct {
		name    string
		data    []byte
		issuer  *x509.Certificate
		wantErr error // nil: must parse; errAny: any error
	}{
		{name: "DER with issuer", data: der, issuer: ca.inter.Cert},
		{name: "PEM with issuer", data: pki.EncodeCRLPEM(der), issuer: ca.inter.Cert},
		{name: "no issuer check", data: der},
		{name: "wrong issuer", data: der, issuer: ca.root.Cert, wantErr: pki.ErrCRLIssuer},
		{name: "same name other key", data: der, issuer: otherCAWithName(t, ca.inter.Cert), wantErr: pki.ErrCRLIssuer},
		{name: "tampered signature", data: tampered, issuer: ca.inter.Cert, wantErr: errAny},
		{name: "garbage", data: []byte("not a crl"), wantErr: errAny},
		{name: "certificate PEM", data: pki.EncodeCertsPEM(kept.Cert), wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crl, err := pki.ParseCRL(tt.data, tt.issuer)
			switch {
			case tt.wantErr == errAny:
				if err == nil {
					t.Fatal("ParseCRL succeeded, want an error")
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseCRL = %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("ParseCRL: %v", err)
			}
			if crl.Number.Int64() != 7 || !crl.ThisUpdate.Equal(now) || !crl.NextUpdate.Equal(now.Add(time.Hour)) {
				t.Errorf("CRL number %v, window %s..%s", crl.Number, crl.ThisUpdate, crl.NextUpdate)
			}
			if !listed(crl, revoked.Cert.SerialNumber) || !listed(crl, big.NewInt(99)) {
				t.Errorf("CRL does not list the revoked serials")
			}
			if listed(crl, kept.Cert.SerialNumber) {
				t.Errorf("CRL lists a serial that was not revoked")
			}
		})
	}
}

var errAny = errors.New("any error")

// otherCAWithName returns a CA certificate with the same subject as cert but another key.
func otherCAWithName(tb testing.TB, cert *x509.Certificate) *x509.Certificate {
	tb.Helper()
	other, err := pki.NewRootCA(cert.Subject.CommonName)
	if err != nil {
		tb.Fatal(err)
	}
	return other.Cert
}

func listed(crl *x509.RevocationList, serial *big.Int) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

func TestCRLEntriesKeepRevocationTime(t *testing.T) {
	ca := newTestCA(t)
	long := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	now := time.Now().Truncate(time.Second)
	der, err := ca.inter.CreateCRLEntries([]x509.RevocationListEntry{{SerialNumber: big.NewInt(5), RevocationTime: long}},
		big.NewInt(2), now, now.Add(time.Hour))
	if err != nil {
		t.Fatalf("CreateCRLEntries: %v", err)
	}
	crl, err := pki.ParseCRL(der, ca.inter.Cert)
	if err != nil {
		t.Fatalf("ParseCRL: %v", err)
	}
	if got := crl.RevokedCertificateEntries[0].RevocationTime; !got.Equal(long) {
		t.Errorf("revocation time %s, want %s", got, long)
	}
	if _, err := ca.inter.CreateCRL(nil, big.NewInt(1), now, now); !errors.Is(err, pki.ErrBadValidity) {
		t.Errorf("CreateCRL with empty window = %v, want ErrBadValidity", err)
	}
	if _, err := ca.inter.CreateCRL(nil, nil, now, now.Add(time.Hour)); err == nil {
		t.Error("CreateCRL with nil number succeeded")
	}
}

// TestKeyTypes issues one leaf per key type (RSA generation is slow, so each key is
// made once and used for every check) and proves it works in a real mTLS handshake.
func TestKeyTypes(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name   string
		kt     pki.KeyType
		wantKU x509.KeyUsage
	}{
		{name: "default", kt: "", wantKU: x509.KeyUsageDigitalSignature},
		{name: "rsa-1024", kt: pki.RSA1024, wantKU: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{name: "rsa-2048", kt: pki.RSA2048, wantKU: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{name: "rsa-3072", kt: pki.RSA3072, wantKU: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{name: "ed25519", kt: pki.Ed25519, wantKU: x509.KeyUsageDigitalSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []pki.Option
			want := pki.ECDSAP256
			if tt.kt != "" {
				opts, want = []pki.Option{pki.WithKeyType(tt.kt)}, tt.kt
			}
			const id = "spiffe://bank.local/service/accounts"
			leaf := ca.issue(t, pki.Request{
				CommonName: "accounts", SPIFFEIDs: []string{id}, DNSNames: []string{"localhost"},
				Usage: pki.ServerAuth | pki.ClientAuth,
			}, opts...)
			if kt, err := pki.KeyTypeOf(leaf.Cert.PublicKey); err != nil || kt != want {
				t.Fatalf("KeyTypeOf = %q, %v; want %q", kt, err, want)
			}
			if leaf.Cert.KeyUsage != tt.wantKU {
				t.Errorf("KeyUsage = %v, want %v", leaf.Cert.KeyUsage, tt.wantKU)
			}

			// The same leaf serves as server and client certificate.
			state, err := handshake(t, pki.NewCertPool(ca.root.Cert), leaf.TLSCertificate(), leaf.TLSCertificate())
			if err != nil {
				t.Fatalf("mTLS handshake: %v", err)
			}
			if state.Version != tls.VersionTLS13 || len(state.VerifiedChains) == 0 {
				t.Fatalf("handshake state: version %x, %d verified chains", state.Version, len(state.VerifiedChains))
			}
			if got := state.VerifiedChains[0]; len(got) != 3 || got[0].URIs[0].String() != id {
				t.Errorf("server verified a chain of %d certs for %v", len(got), got[0].URIs)
			}

			keyPEM, err := pki.EncodeKeyPEM(leaf.Key)
			if err != nil {
				t.Fatalf("EncodeKeyPEM: %v", err)
			}
			key, err := pki.ParseKeyPEM(keyPEM)
			if err != nil || pki.KeyMatches(leaf.Cert, key) != nil {
				t.Fatalf("PEM key round trip: %v", err)
			}

			p12, err := pki.EncodePKCS12(leaf, "accounts", leaf.Chain[1:], "changeit")
			if err != nil {
				t.Fatalf("EncodePKCS12: %v", err)
			}
			got, caCerts, err := pki.DecodePKCS12(p12, "changeit")
			if err != nil {
				t.Fatalf("DecodePKCS12: %v", err)
			}
			if !got.Cert.Equal(leaf.Cert) || pki.KeyMatches(leaf.Cert, got.Key) != nil {
				t.Errorf("PKCS#12 round trip changed the leaf or key")
			}
			if len(caCerts) != 1 || !caCerts[0].Equal(ca.inter.Cert) || len(got.Chain) != 2 {
				t.Errorf("PKCS#12 round trip: %d CA certs, chain of %d", len(caCerts), len(got.Chain))
			}
		})
	}
}

func TestHandshakeRejectsOtherCA(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	server := ca.issue(t, pki.Request{CommonName: "s", DNSNames: []string{"localhost"}, Usage: pki.ServerAuth})
	rogue := other.issue(t, pki.Request{CommonName: "c", Usage: pki.ClientAuth})
	_, err := handshake(t, pki.NewCertPool(ca.root.Cert), server.TLSCertificate(), rogue.TLSCertificate())
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("handshake with a client from another CA: %v, want UnknownAuthorityError", err)
	}
}

func TestCAKeyTypes(t *testing.T) {
	ca := newTestCA(t, pki.WithKeyType(pki.Ed25519))
	if kt, _ := pki.KeyTypeOf(ca.inter.Cert.PublicKey); kt != pki.Ed25519 {
		t.Fatalf("intermediate key type %q, want ed25519", kt)
	}
	leaf := ca.issue(t, pki.Request{CommonName: "c", Usage: pki.ClientAuth})
	if err := ca.verify(leaf, x509.ExtKeyUsageClientAuth, time.Time{}); err != nil {
		t.Fatalf("verify leaf of an Ed25519 CA: %v", err)
	}
	now := time.Now()
	der, err := ca.inter.CreateCRL([]*big.Int{leaf.Cert.SerialNumber}, big.NewInt(1), now, now.Add(time.Hour))
	if err != nil {
		t.Fatalf("CreateCRL: %v", err)
	}
	if _, err := pki.ParseCRL(der, ca.inter.Cert); err != nil {
		t.Fatalf("ParseCRL: %v", err)
	}
	if _, err := pki.NewRootCA("x", pki.WithKeyType("dsa")); !errors.Is(err, pki.ErrUnknownKeyType) {
		t.Fatalf("NewRootCA with an unknown key type = %v, want ErrUnknownKeyType", err)
	}
}

func TestSelfSigned(t *testing.T) {
	ca := newTestCA(t)
	leaf, err := pki.SelfSigned(pki.Request{CommonName: "selfsigned", SPIFFEIDs: []string{"spiffe://bank.local/customer/alice"}, Usage: pki.ClientAuth})
	if err != nil {
		t.Fatalf("SelfSigned: %v", err)
	}
	if len(leaf.Chain) != 1 || leaf.Cert.IsCA || !pki.IsSelfIssued(leaf.Cert) {
		t.Fatalf("self-signed leaf: chain %d, CA %v", len(leaf.Chain), leaf.Cert.IsCA)
	}
	if err := pki.SignedBy(leaf.Cert, leaf.Cert); err != nil {
		t.Fatalf("SignedBy(self): %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := ca.verify(leaf, x509.ExtKeyUsageClientAuth, time.Time{}); !errors.As(err, &unknown) {
		t.Fatalf("verify self-signed against the bank root: %v, want UnknownAuthorityError", err)
	}
	if err := pki.SignedBy(leaf.Cert, ca.inter.Cert); err == nil {
		t.Fatal("SignedBy(self-signed, intermediate) succeeded")
	}
}

func TestLoadCA(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	leaf := ca.issue(t, pki.Request{CommonName: "c", Usage: pki.ClientAuth})
	tests := []struct {
		name      string
		load      func() (*pki.CA, error)
		wantErr   error
		wantChain int
	}{
		{name: "root", load: func() (*pki.CA, error) { return pki.LoadCA(ca.root.Cert, ca.root.Key) }, wantChain: 1},
		{name: "intermediate with root", load: func() (*pki.CA, error) { return pki.LoadCA(ca.inter.Cert, ca.inter.Key, ca.root.Cert) }, wantChain: 1},
		{name: "wrong key", load: func() (*pki.CA, error) { return pki.LoadCA(ca.inter.Cert, other.inter.Key) }, wantErr: pki.ErrKeyMismatch},
		{name: "leaf is not a CA", load: func() (*pki.CA, error) { return pki.LoadCA(leaf.Cert, leaf.Key) }, wantErr: pki.ErrNotCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.load()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("LoadCA = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCA: %v", err)
			}
			if len(got.Chain) != tt.wantChain {
				t.Fatalf("Chain has %d certs, want %d", len(got.Chain), tt.wantChain)
			}
			if _, err := got.Issue(pki.Request{CommonName: "x", Usage: pki.ClientAuth}); err != nil {
				t.Fatalf("Issue from loaded CA: %v", err)
			}
		})
	}
	if _, err := (&pki.CA{Cert: leaf.Cert, Key: leaf.Key}).Issue(pki.Request{CommonName: "x"}); !errors.Is(err, pki.ErrNotCA) {
		t.Fatalf("Issue from a non-CA = %v, want ErrNotCA", err)
	}
}

func TestPEM(t *testing.T) {
	ca := newTestCA(t)
	certs := pki.EncodeCertsPEM(ca.root.Cert, ca.inter.Cert)
	ecKey := ca.inter.Key.(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := pki.EncodeKeyPEM(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}})
	sec1PEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})

	t.Run("certs", func(t *testing.T) {
		tests := []struct {
			name    string
			data    []byte
			want    int
			wantErr bool
		}{
			{name: "bundle", data: certs, want: 2},
			{name: "leading text", data: append([]byte("subject=CN = test root\n"), certs...), want: 2},
			{name: "empty", data: nil, wantErr: true},
			{name: "not PEM", data: []byte("hello"), wantErr: true},
			{name: "key block", data: append(bytes.Clone(certs), pkcs8...), wantErr: true},
			{name: "truncated block", data: certs[:len(certs)-30], wantErr: true},
			{name: "bad DER", data: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), wantErr: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := pki.ParseCertsPEM(tt.data)
				if tt.wantErr {
					if err == nil {
						t.Fatalf("ParseCertsPEM gave %d certs, want an error", len(got))
					}
					return
				}
				if err != nil || len(got) != tt.want || !got[0].Equal(ca.root.Cert) {
					t.Fatalf("ParseCertsPEM = %d certs, %v; want %d starting with the root", len(got), err, tt.want)
				}
			})
		}
	})

	t.Run("keys", func(t *testing.T) {
		tests := []struct {
			name    string
			data    []byte
			wantErr bool
		}{
			{name: "PKCS#8", data: pkcs8},
			{name: "SEC1", data: sec1PEM},
			{name: "SEC1 after EC PARAMETERS", data: append(bytes.Clone(ecParams), sec1PEM...)},
			{name: "empty", data: nil, wantErr: true},
			{name: "certificate", data: certs, wantErr: true},
			{name: "truncated", data: pkcs8[:len(pkcs8)-30], wantErr: true},
			{name: "bad DER", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), wantErr: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				key, err := pki.ParseKeyPEM(tt.data)
				if tt.wantErr {
					if err == nil {
						t.Fatal("ParseKeyPEM succeeded, want an error")
					}
					return
				}
				if err != nil {
					t.Fatalf("ParseKeyPEM: %v", err)
				}
				if err := pki.KeyMatches(ca.inter.Cert, key); err != nil {
					t.Fatalf("parsed key: %v", err)
				}
			})
		}
	})

	t.Run("PKCS#1", func(t *testing.T) {
		key, err := pki.GenerateKey(pki.RSA1024)
		if err != nil {
			t.Fatal(err)
		}
		data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))})
		got, err := pki.ParseKeyPEM(data)
		if err != nil || !key.(*rsa.PrivateKey).Equal(got) {
			t.Fatalf("ParseKeyPEM(PKCS#1) = %v", err)
		}
	})
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "x.key")
	tests := []struct {
		name string
		data string
		perm os.FileMode
	}{
		{name: "create", data: "one", perm: 0o600},
		{name: "replace", data: "two", perm: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := pki.WriteFileAtomic(name, []byte(tt.data), tt.perm); err != nil {
				t.Fatalf("WriteFileAtomic: %v", err)
			}
			got, err := os.ReadFile(name)
			if err != nil || string(got) != tt.data {
				t.Fatalf("read back %q, %v; want %q", got, err, tt.data)
			}
			info, err := os.Stat(name)
			if err != nil || info.Mode().Perm() != tt.perm {
				t.Fatalf("mode %v, %v; want %v", info.Mode().Perm(), err, tt.perm)
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 1 {
				t.Fatalf("dir holds %d entries (%v), want only the file", len(entries), err)
			}
		})
	}
	if err := pki.WriteFileAtomic(filepath.Join(dir, "missing", "x"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFileAtomic into a missing directory succeeded")
	}
}

// TestLeafSVIDRules: every leaf Issue makes, for every key type and usage, follows the
// SPIFFE X.509-SVID leaf rules (digitalSignature set, keyCertSign and cRLSign never,
// CA:false in a valid basicConstraints), and only WithKeyUsage, the fixture knob, can
// break them.
func TestLeafSVIDRules(t *testing.T) {
	for _, kt := range pki.KeyTypes() {
		ca := newTestCA(t)
		for _, usage := range []pki.Usage{pki.ClientAuth, pki.ServerAuth, pki.ServerAuth | pki.ClientAuth, 0} {
			t.Run(fmt.Sprintf("%s usage %d", kt, usage), func(t *testing.T) {
				c := ca.issue(t, pki.Request{CommonName: "x", SPIFFEIDs: []string{"spiffe://bank.local/x"}, Usage: usage}, pki.WithKeyType(kt)).Cert
				if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
					t.Errorf("KeyUsage %v lacks digitalSignature", c.KeyUsage)
				}
				if c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
					t.Errorf("KeyUsage %v has keyCertSign or cRLSign", c.KeyUsage)
				}
				if !c.BasicConstraintsValid || c.IsCA {
					t.Errorf("basicConstraints valid=%v CA=%v, want CA:false", c.BasicConstraintsValid, c.IsCA)
				}
			})
		}
	}
	t.Run("fixtures", func(t *testing.T) {
		ca := newTestCA(t)
		tests := []struct {
			name string
			ku   x509.KeyUsage
		}{
			{name: "no key usage", ku: 0},
			{name: "keyEncipherment only", ku: x509.KeyUsageKeyEncipherment},
			{name: "certSign on a leaf", ku: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign},
			{name: "cRLSign on a leaf", ku: x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := ca.issue(t, pki.Request{CommonName: "x", Usage: pki.ClientAuth}, pki.WithKeyUsage(tt.ku)).Cert
				if c.KeyUsage != tt.ku || c.IsCA {
					t.Errorf("KeyUsage %v CA=%v, want %v and CA:false", c.KeyUsage, c.IsCA, tt.ku)
				}
			})
		}
	})
}

// FuzzParseCRLs: any input is a list of CRLs or an error, never a panic, and every CRL
// returned came from an "X509 CRL" block.
func FuzzParseCRLs(f *testing.F) {
	ca := newTestCA(f)
	der, err := ca.inter.CreateCRL([]*big.Int{big.NewInt(7)}, big.NewInt(1), time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	one := pki.EncodeCRLPEM(der)
	f.Add(one)
	f.Add(append(bytes.Clone(one), one...))
	f.Add(append(bytes.Clone(one), pki.EncodeCertsPEM(ca.root.Cert)...))
	f.Add(one[:len(one)/2])
	f.Add(der)
	f.Fuzz(func(t *testing.T, data []byte) {
		crls, err := pki.ParseCRLs(data)
		if err == nil && len(crls) == 0 {
			t.Fatal("ParseCRLs returned no CRL and no error")
		}
		if err == nil && len(crls) > bytes.Count(data, []byte("-----BEGIN X509 CRL-----")) {
			t.Fatalf("%d CRLs from fewer blocks", len(crls))
		}
	})
}
