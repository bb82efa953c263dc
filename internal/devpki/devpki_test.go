package devpki_test

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"mtlsbank/internal/devpki"
	"mtlsbank/internal/pki"
)

// TestLayout checks the interface contract: exactly these files, these modes, and each
// leaf with the identity and usages its name promises.
func TestLayout(t *testing.T) {
	_, dir := newPKI(t)
	files := snapshot(t, dir)

	want := []string{"./", "ca/", "ca.crt", "intermediates.crt", "crl.pem", "rogue-ca.crt",
		"ca/root.crt", "ca/root.key", "ca/intermediate.crt", "ca/intermediate.key", "ca/rogue-ca.key", "ca/state.json"}
	want = append(want, leafFiles(devpki.Names()...)...)
	want = append(want, devpki.AuditKeyFiles()...)
	slices.Sort(want)
	if got := sortedKeys(files); !slices.Equal(got, want) {
		t.Fatalf("files:\n got %v\nwant %v", got, want)
	}
	for name, st := range files {
		wantMode := fs.FileMode(0o644)
		switch {
		case name == "ca/":
			wantMode = fs.ModeDir | 0o700
		case name == "./":
			wantMode = fs.ModeDir | 0o755
		case strings.HasSuffix(name, ".key"), strings.HasSuffix(name, ".p12"), name == "ca/state.json":
			wantMode = 0o600
		}
		if st.mode != wantMode {
			t.Errorf("%s: mode %v, want %v", name, st.mode, wantMode)
		}
		if strings.HasSuffix(name, ".key") && !strings.HasPrefix(st.data, "-----BEGIN PRIVATE KEY-----\n") {
			t.Errorf("%s is not a PKCS#8 PEM key", name)
		}
	}

	// ca.crt holds the trust anchors only; the intermediate is chain material.
	bundle := readChain(t, filepath.Join(dir, devpki.BundleFile))
	if len(bundle) != 1 || !pki.IsSelfIssued(bundle[0]) || pki.SignedBy(bundle[0], bundle[0]) != nil {
		t.Fatalf("ca.crt: want the self-signed root only, got %d certs", len(bundle))
	}
	inters := readChain(t, filepath.Join(dir, devpki.IntermediatesFile))
	if len(inters) != 1 || pki.IsSelfIssued(inters[0]) || pki.SignedBy(inters[0], bundle[0]) != nil || !inters[0].IsCA {
		t.Fatalf("intermediates.crt: want the one intermediate the root signed, got %d certs", len(inters))
	}
	root, inter := bundle[0], inters[0]
	// crl.pem: the root's CRL (nothing revoked) then the intermediate's.
	crls := readCRLs(t, dir)
	if len(crls) != 2 || crls[0].CheckSignatureFrom(root) != nil || crls[1].CheckSignatureFrom(inter) != nil {
		t.Fatalf("crl.pem: %d CRLs, want the root's then the intermediate's", len(crls))
	}
	for i, crl := range crls {
		validity := crl.NextUpdate.Sub(crl.ThisUpdate)
		if crl.Number == nil || crl.Number.Int64() != 1 || validity != devpki.DefaultCRLValidity+time.Minute {
			t.Errorf("CRL %d: number %v, validity %s; want 1 and %s", i, crl.Number, validity, devpki.DefaultCRLValidity)
		}
		if len(crl.Extensions) != 2 { // CRL number and authority key identifier only
			t.Errorf("CRL %d has extensions %v", i, crl.Extensions)
		}
	}
	if len(crls[0].RevokedCertificateEntries) != 0 {
		t.Errorf("the root's CRL lists %v", revokedSerials(crls[0]))
	}
	rogueCA := readChain(t, filepath.Join(dir, devpki.RogueCAFile))[0]
	if rogueCA.Equal(root) || !rogueCA.IsCA {
		t.Fatal("rogue-ca.crt is not a separate CA")
	}

	const (
		client = iota
		server
	)
	tests := []struct {
		name     string
		spiffeID string
		usage    int
		eku      []x509.ExtKeyUsage
		issuer   *x509.Certificate // nil: self-signed
		isCA     bool
	}{
		{name: "accounts", spiffeID: "spiffe://bank.local/service/accounts", usage: server},
		{name: "payments", spiffeID: "spiffe://bank.local/service/payments", usage: server},
		{name: "teller", spiffeID: "spiffe://bank.local/teller/tina"},
		{name: "alice", spiffeID: "spiffe://bank.local/customer/alice"},
		{name: "bob", spiffeID: "spiffe://bank.local/customer/bob"},
		{name: "auditor", spiffeID: "spiffe://bank.local/auditor/audrey"},
		{name: "intern", spiffeID: "spiffe://bank.local/intern/ivan"},
		{name: "expired", spiffeID: "spiffe://bank.local/customer/eve"},
		{name: "notyet", spiffeID: "spiffe://bank.local/customer/nora"},
		{name: "rogue", spiffeID: "spiffe://bank.local/customer/alice", issuer: rogueCA},
		{name: "selfsigned", spiffeID: "spiffe://bank.local/customer/alice"},
		{name: "serveronly", spiffeID: "spiffe://bank.local/customer/alice", eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{name: "revoked", spiffeID: "spiffe://bank.local/customer/mallory"},
		{name: "cacert", spiffeID: "spiffe://bank.local/customer/alice", isCA: true},
	}
	if len(tests) != len(devpki.Names()) {
		t.Fatalf("test covers %d names, Names() has %d", len(tests), len(devpki.Names()))
	}
	crl := readCRL(t, dir)
	now := time.Now()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain := readChain(t, filepath.Join(dir, tt.name+".crt"))
			leaf := chain[0]
			issuer := inter
			switch {
			case tt.issuer != nil:
				issuer = tt.issuer
			case tt.name == "selfsigned":
				issuer = leaf
			}
			if err := pki.SignedBy(leaf, issuer); err != nil {
				t.Errorf("issuer: %v", err)
			}
			wantLen := 1 // a leaf of another CA carries no bank intermediate
			if issuer == inter {
				wantLen = 2
			}
			if len(chain) != wantLen || (wantLen == 2 && !chain[1].Equal(inter)) {
				t.Errorf("%s.crt holds %d certs, want leaf + intermediate only for bank-issued leaves", tt.name, len(chain))
			}
			if leaf.Subject.CommonName != tt.name {
				t.Errorf("CN %q, want %q", leaf.Subject.CommonName, tt.name)
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != tt.spiffeID {
				t.Errorf("URI SANs %v, want only %s", leaf.URIs, tt.spiffeID)
			}
			wantEKU := tt.eku
			if wantEKU == nil {
				wantEKU = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			}
			var wantDNS []string
			var wantIPs []net.IP
			if tt.usage == server {
				wantEKU = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
				wantDNS, wantIPs = []string{"localhost", tt.name}, []net.IP{net.IPv4(127, 0, 0, 1)}
			}
			if !slices.Equal(leaf.ExtKeyUsage, wantEKU) {
				t.Errorf("EKU %v, want %v", leaf.ExtKeyUsage, wantEKU)
			}
			if !slices.Equal(leaf.DNSNames, wantDNS) || !slices.EqualFunc(leaf.IPAddresses, wantIPs, net.IP.Equal) {
				t.Errorf("DNS %v IP %v, want %v %v", leaf.DNSNames, leaf.IPAddresses, wantDNS, wantIPs)
			}
			if leaf.IsCA != tt.isCA {
				t.Errorf("CA:%v, want %v", leaf.IsCA, tt.isCA)
			}
			if kt, err := pki.KeyTypeOf(leaf.PublicKey); err != nil || kt != pki.ECDSAP256 {
				t.Errorf("key type %q, %v; want the default", kt, err)
			}
			switch tt.name {
			case "expired":
				if !now.After(leaf.NotAfter.Add(23 * time.Hour)) {
					t.Errorf("expired ends %s, want about a day ago", leaf.NotAfter)
				}
			case "notyet":
				if !leaf.NotBefore.After(now.Add(23 * time.Hour)) {
					t.Errorf("notyet starts %s, want about a day from now", leaf.NotBefore)
				}
			default:
				if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
					t.Errorf("window %s..%s does not contain now", leaf.NotBefore, leaf.NotAfter)
				}
			}
			listed := slices.Contains(revokedSerials(crl), leaf.SerialNumber.String())
			if listed != (tt.name == "revoked") {
				t.Errorf("listed in crl.pem: %v", listed)
			}

			key, err := pki.ParseKeyPEM([]byte(files[tt.name+".key"].data))
			if err != nil || pki.KeyMatches(leaf, key) != nil {
				t.Errorf("%s.key does not hold the leaf's key: %v", tt.name, err)
			}
			p12, _, err := pki.DecodePKCS12([]byte(files[tt.name+".p12"].data), devpki.DefaultP12Password)
			if err != nil || !p12.Cert.Equal(leaf) {
				t.Errorf("%s.p12 does not hold the leaf: %v", tt.name, err)
			}
			if name, err := pki.PKCS12FriendlyName([]byte(files[tt.name+".p12"].data), devpki.DefaultP12Password); err != nil || name != tt.name {
				t.Errorf("%s.p12 names its key entry %q (%v), want %q", tt.name, name, err, tt.name)
			}
		})
	}
}

func TestInitIdempotent(t *testing.T) {
	start := time.Now()
	clock := start
	p, dir := newPKI(t, devpki.WithClock(func() time.Time { return clock }))
	tests := []struct {
		name        string
		setup       func(t *testing.T)
		pki         func() *devpki.PKI // nil: p
		wantWritten []string
	}{
		{name: "second run keeps everything", wantWritten: nil},
		{
			name:        "a day later notyet is about to become valid",
			setup:       func(*testing.T) { clock = start.Add(24 * time.Hour) },
			wantWritten: leafFiles("notyet"),
		},
		{
			name:        "missing key",
			setup:       func(t *testing.T) { mustRemove(t, filepath.Join(dir, "bob.key")) },
			wantWritten: leafFiles("bob"),
		},
		{
			name:        "missing p12 only",
			setup:       func(t *testing.T) { mustRemove(t, filepath.Join(dir, "teller.p12")) },
			wantWritten: []string{"teller.p12"},
		},
		{
			name:        "unreadable certificate",
			setup:       func(t *testing.T) { mustWrite(t, filepath.Join(dir, "alice.crt"), "garbage") },
			wantWritten: leafFiles("alice"),
		},
		{
			name: "key of another leaf",
			setup: func(t *testing.T) {
				data, err := os.ReadFile(filepath.Join(dir, "auditor.key"))
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, filepath.Join(dir, "intern.key"), string(data))
			},
			wantWritten: leafFiles("intern"),
		},
		{
			name:        "missing bundle",
			setup:       func(t *testing.T) { mustRemove(t, filepath.Join(dir, devpki.BundleFile)) },
			wantWritten: []string{devpki.BundleFile},
		},
		{
			name:        "missing rogue CA replaces it and the rogue leaf",
			setup:       func(t *testing.T) { mustRemove(t, filepath.Join(dir, devpki.RogueCAFile)) },
			wantWritten: append([]string{"ca/rogue-ca.key", devpki.RogueCAFile}, leafFiles("rogue")...),
		},
		{
			name: "another p12 password rewrites only the p12 files",
			pki: func() *devpki.PKI {
				return mustNew(t, dir, devpki.WithP12Password("s3cret"), devpki.WithClock(func() time.Time { return clock }))
			},
			wantWritten: p12Files(devpki.Names()...),
		},
		{
			name: "full chain rewrites the p12 files that have a root to add",
			pki: func() *devpki.PKI {
				return mustNew(t, dir, devpki.WithP12Password("s3cret"), devpki.WithP12FullChain(true),
					devpki.WithClock(func() time.Time { return clock }))
			},
			// selfsigned.p12 has no root to add.
			wantWritten: slices.DeleteFunc(p12Files(devpki.Names()...), func(f string) bool { return f == "selfsigned.p12" }),
		},
		{
			name: "full chain again keeps everything",
			pki: func() *devpki.PKI {
				return mustNew(t, dir, devpki.WithP12Password("s3cret"), devpki.WithP12FullChain(true),
					devpki.WithClock(func() time.Time { return clock }))
			},
			wantWritten: nil,
		},
		{
			name: "without full chain the roots leave the p12 files again",
			pki: func() *devpki.PKI {
				return mustNew(t, dir, devpki.WithP12Password("s3cret"), devpki.WithClock(func() time.Time { return clock }))
			},
			wantWritten: slices.DeleteFunc(p12Files(devpki.Names()...), func(f string) bool { return f == "selfsigned.p12" }),
		},
		{
			name: "three weeks later the good leaves and the CRL are renewed",
			setup: func(*testing.T) {
				clock = start.Add(21 * 24 * time.Hour)
			},
			pki: func() *devpki.PKI {
				return mustNew(t, dir, devpki.WithP12Password("s3cret"), devpki.WithClock(func() time.Time { return clock }))
			},
			wantWritten: append(leafFiles("accounts", "alice", "auditor", "bob", "cacert", "intern", "notyet",
				"payments", "revoked", "rogue", "selfsigned", "serveronly", "teller"), devpki.CRLFile, "ca/state.json"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			run := p
			if tt.pki != nil {
				run = tt.pki()
			}
			before := snapshot(t, dir)
			results, err := run.Init()
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			got := written(t, dir, results)
			slices.Sort(tt.wantWritten)
			if !slices.Equal(got, tt.wantWritten) {
				t.Fatalf("written:\n got %v\nwant %v", got, tt.wantWritten)
			}
			after := snapshot(t, dir)
			// Every file is reported once, and only reported files changed.
			if len(results) != len(after)-2 {
				t.Errorf("%d results for %d files", len(results), len(after)-2)
			}
			for _, name := range changed(before, after) {
				if !slices.Contains(got, name) {
					t.Errorf("%s changed but was not reported as written", name)
				}
			}
		})
	}

	crl := readCRL(t, dir)
	if crl.Number.Int64() != 2 || readCRLOf(t, dir, "root").Number.Int64() != 2 {
		t.Errorf("CRL number %v after one renewal, want 2 (the root's too)", crl.Number)
	}
	if len(crl.RevokedCertificateEntries) != 2 {
		t.Errorf("CRL lists %v, want the old and the new revoked serial", revokedSerials(crl))
	}
	if !slices.Contains(revokedSerials(crl), serialOf(t, dir, "revoked")) {
		t.Error("the current revoked serial is not listed")
	}
}

// TestP12FriendlyName: a .p12 whose key entry is not named NAME (as certgen wrote them
// before friendlyNames) is rewritten once, with the reason, and then kept; Issue names
// the entry of a new NAME.
func TestP12FriendlyName(t *testing.T) {
	p, dir := newPKI(t)
	path := filepath.Join(dir, "alice.p12")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	leaf, caCerts, err := pki.DecodePKCS12(data, devpki.DefaultP12Password)
	if err != nil {
		t.Fatal(err)
	}
	unnamed, err := pkcs12.Modern.Encode(leaf.Key, leaf.Cert, caCerts, devpki.DefaultP12Password)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, path, string(unnamed))

	results, err := p.Init()
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if got := written(t, dir, results); !slices.Equal(got, []string{"alice.p12"}) {
		t.Fatalf("written %v, want [alice.p12]", got)
	}
	if i := slices.IndexFunc(results, func(r devpki.FileResult) bool { return r.Path == path }); results[i].Reason != "no friendlyName" {
		t.Errorf("alice.p12 written for %q, want \"no friendlyName\"", results[i].Reason)
	}
	if data, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if name, err := pki.PKCS12FriendlyName(data, devpki.DefaultP12Password); err != nil || name != "alice" {
		t.Errorf("alice.p12 names its key entry %q, %v", name, err)
	}
	if results, err := p.Init(); err != nil || len(written(t, dir, results)) != 0 {
		t.Errorf("Init again wrote %v, %v; want nothing", written(t, dir, results), err)
	}

	if _, err := p.Issue("carol", "spiffe://bank.local/customer/carol", time.Hour); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if data, err = os.ReadFile(filepath.Join(dir, "carol.p12")); err != nil {
		t.Fatal(err)
	}
	if name, err := pki.PKCS12FriendlyName(data, devpki.DefaultP12Password); err != nil || name != "carol" {
		t.Errorf("carol.p12 names its key entry %q, %v", name, err)
	}
}

func TestInitKeyType(t *testing.T) {
	_, dir := newPKI(t)
	root := serialOf(t, dir, "ca/root")
	results, err := mustNew(t, dir, devpki.WithKeyType(pki.Ed25519)).Init()
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	// The reissued revoked leaf has a new serial, so the CRL grows too.
	want := append(leafFiles(devpki.Names()...), devpki.CRLFile, "ca/state.json")
	slices.Sort(want)
	if got := written(t, dir, results); !slices.Equal(got, want) {
		t.Errorf("another key type rewrote %v, want every leaf and the CRL", got)
	}
	if serialOf(t, dir, "ca/root") != root {
		t.Error("another key type replaced the CA")
	}
	for _, name := range devpki.Names() {
		if kt, _ := pki.KeyTypeOf(readChain(t, filepath.Join(dir, name+".crt"))[0].PublicKey); kt != pki.Ed25519 {
			t.Errorf("%s has key type %q", name, kt)
		}
	}
}

// TestInitRefusesBrokenState: a broken CA or CRL is an error, and nothing changes.
func TestInitRefusesBrokenState(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantErr error
	}{
		{name: "garbage intermediate key", damage: func(t *testing.T, dir string) { mustWrite(t, filepath.Join(dir, "ca/intermediate.key"), "x") }, wantErr: devpki.ErrBrokenCA},
		{name: "missing root certificate", damage: func(t *testing.T, dir string) { mustRemove(t, filepath.Join(dir, "ca/root.crt")) }, wantErr: devpki.ErrBrokenCA},
		{
			name: "intermediate from another CA",
			damage: func(t *testing.T, dir string) {
				_, other := newPKI(t)
				for _, f := range []string{"ca/intermediate.crt", "ca/intermediate.key"} {
					data, err := os.ReadFile(filepath.Join(other, f))
					if err != nil {
						t.Fatal(err)
					}
					mustWrite(t, filepath.Join(dir, f), string(data))
				}
			},
			wantErr: devpki.ErrBrokenCA,
		},
		{
			// A PKI made before the state file: its revocations are only in crl.pem.
			name: "garbage CRL and no state",
			damage: func(t *testing.T, dir string) {
				mustRemove(t, filepath.Join(dir, "ca/state.json"))
				mustWrite(t, filepath.Join(dir, devpki.CRLFile), "x")
			},
			wantErr: devpki.ErrBadCRL,
		},
		{name: "garbage state", damage: func(t *testing.T, dir string) { mustWrite(t, filepath.Join(dir, "ca/state.json"), "{") }, wantErr: devpki.ErrBadState},
		{
			name: "state with an unknown field",
			damage: func(t *testing.T, dir string) {
				mustWrite(t, filepath.Join(dir, "ca/state.json"), `{"version":1,"issuing":"intermediate","cas":[{"name":"root"},{"name":"intermediate"}],"x":1}`)
			},
			wantErr: devpki.ErrBadState,
		},
		{
			name: "state issuing from an unlisted intermediate",
			damage: func(t *testing.T, dir string) {
				mustWrite(t, filepath.Join(dir, "ca/state.json"), `{"version":1,"issuing":"intermediate-2","cas":[{"name":"root"},{"name":"intermediate"}]}`)
			},
			wantErr: devpki.ErrBadState,
		},
		{
			name: "state lists an intermediate without files",
			damage: func(t *testing.T, dir string) {
				mustWrite(t, filepath.Join(dir, "ca/state.json"), `{"version":1,"issuing":"intermediate","cas":[{"name":"root"},{"name":"intermediate"},{"name":"intermediate-2"}]}`)
			},
			wantErr: devpki.ErrBrokenCA,
		},
		{
			name: "state with a path as a CA name",
			damage: func(t *testing.T, dir string) {
				mustWrite(t, filepath.Join(dir, "ca/state.json"), `{"version":1,"issuing":"intermediate","cas":[{"name":"root"},{"name":"intermediate"},{"name":"../alice"}]}`)
			},
			wantErr: devpki.ErrBadState,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, dir := newPKI(t)
			tt.damage(t, dir)
			before := snapshot(t, dir)
			_, err := mustNew(t, dir).Init()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Init = %v, want %v", err, tt.wantErr)
			}
			if diff := changed(before, snapshot(t, dir)); len(diff) != 0 {
				t.Fatalf("a failed Init changed %v", diff)
			}

			// --force starts over.
			results, err := mustNew(t, dir, devpki.WithForce(true)).Init()
			if err != nil {
				t.Fatalf("forced Init: %v", err)
			}
			if got := len(written(t, dir, results)); len(results)-got != len(devpki.AuditKeyFiles()) {
				t.Errorf("forced Init kept %d files, want only the audit keys (%d)", len(results)-got, len(devpki.AuditKeyFiles()))
			}
			if _, err := mustNew(t, dir).Init(); err != nil {
				t.Fatalf("Init after --force: %v", err)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	p, dir := newPKI(t)
	tests := []struct {
		name        string
		leaf        string
		spiffeID    string
		ttl         time.Duration
		wantID      string
		wantWritten []string
		wantTTL     time.Duration
	}{
		{name: "rotate a service", leaf: "accounts", wantID: "spiffe://bank.local/service/accounts", wantWritten: leafFiles("accounts"), wantTTL: devpki.DefaultLeafTTL},
		{name: "known name with its own ID", leaf: "teller", spiffeID: "spiffe://bank.local/teller/tina", ttl: time.Hour, wantID: "spiffe://bank.local/teller/tina", wantWritten: leafFiles("teller"), wantTTL: time.Hour},
		{name: "new name", leaf: "carol", spiffeID: "spiffe://bank.local/customer/carol", ttl: 2 * time.Hour, wantID: "spiffe://bank.local/customer/carol", wantWritten: leafFiles("carol"), wantTTL: 2 * time.Hour},
		{name: "existing custom name keeps its ID", leaf: "carol", wantID: "spiffe://bank.local/customer/carol", wantWritten: leafFiles("carol"), wantTTL: devpki.DefaultLeafTTL},
		{name: "revoked stays revoked", leaf: "revoked", wantID: "spiffe://bank.local/customer/mallory", wantWritten: append(leafFiles("revoked"), devpki.CRLFile, "ca/state.json"), wantTTL: devpki.DefaultLeafTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var oldSerial string
			if _, err := os.Stat(filepath.Join(dir, tt.leaf+".crt")); err == nil {
				oldSerial = serialOf(t, dir, tt.leaf)
			}
			oldKey := readFile(t, filepath.Join(dir, tt.leaf+".key"))
			oldCRL := readCRL(t, dir)
			before := snapshot(t, dir)

			results, err := p.Issue(tt.leaf, tt.spiffeID, tt.ttl)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			slices.Sort(tt.wantWritten)
			got := written(t, dir, results)
			if !slices.Equal(got, tt.wantWritten) {
				t.Fatalf("written %v, want %v", got, tt.wantWritten)
			}
			if diff := changed(before, snapshot(t, dir)); !slices.Equal(diff, tt.wantWritten) {
				t.Errorf("changed %v, want %v", diff, tt.wantWritten)
			}
			leaf := readChain(t, filepath.Join(dir, tt.leaf+".crt"))[0]
			if leaf.SerialNumber.String() == oldSerial || readFile(t, filepath.Join(dir, tt.leaf+".key")) == oldKey {
				t.Error("Issue kept the old serial or key")
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != tt.wantID {
				t.Errorf("URI SANs %v, want %s", leaf.URIs, tt.wantID)
			}
			if life := leaf.NotAfter.Sub(leaf.NotBefore); life != tt.wantTTL+time.Minute {
				t.Errorf("lifetime %s, want %s (+1m backdating)", life, tt.wantTTL)
			}
			purpose := "sslclient"
			if tt.leaf == "accounts" {
				purpose = "sslserver"
			}
			args := []string{"verify", "-CAfile", devpki.BundleFile, "-untrusted", tt.leaf + ".crt", "-purpose", purpose, tt.leaf + ".crt"}
			// Without -crl_check even the revoked leaf must verify: Issue made a sound certificate.
			if out, err := openssl(t, dir, args...); err != nil {
				t.Errorf("openssl verify %s: %v\n%s", tt.leaf, err, out)
			}
			if tt.leaf == "revoked" {
				crl := readCRL(t, dir)
				serials := revokedSerials(crl)
				if !slices.Contains(serials, leaf.SerialNumber.String()) || !slices.Contains(serials, oldSerial) {
					t.Errorf("CRL %v must list the new and the old serial", serials)
				}
				if crl.Number.Cmp(new(big.Int).Add(oldCRL.Number, big.NewInt(1))) != 0 {
					t.Errorf("CRL number %v after %v", crl.Number, oldCRL.Number)
				}
			}
		})
	}
}

func TestIssueErrorsChangeNothing(t *testing.T) {
	p, dir := newPKI(t)
	tests := []struct {
		name     string
		leaf     string
		spiffeID string
		ttl      time.Duration
		wantErr  error
		wantText string
	}{
		{name: "new name without ID", leaf: "zed", wantErr: devpki.ErrSPIFFEIDRequired, wantText: "--spiffe-id"},
		{name: "not a SPIFFE ID", leaf: "zed", spiffeID: "https://bank.local/customer/zed", wantErr: devpki.ErrBadSPIFFEID},
		{name: "garbage ID", leaf: "zed", spiffeID: "customer zed", wantErr: devpki.ErrBadSPIFFEID},
		{name: "trust domain only", leaf: "zed", spiffeID: "spiffe://bank.local", wantErr: devpki.ErrBadSPIFFEID},
		{name: "other trust domain", leaf: "zed", spiffeID: "spiffe://evil.example/customer/zed", wantErr: devpki.ErrNotInTrustDomain, wantText: "bank.local"},
		{name: "built-in name with another ID", leaf: "alice", spiffeID: "spiffe://bank.local/teller/tina", wantErr: devpki.ErrProfileSPIFFEID},
		{name: "path in name", leaf: "../zed", spiffeID: "spiffe://bank.local/customer/zed", wantErr: devpki.ErrBadName},
		{name: "reserved name", leaf: "ca", spiffeID: "spiffe://bank.local/customer/zed", wantErr: devpki.ErrBadName},
		{name: "hidden name", leaf: ".zed", spiffeID: "spiffe://bank.local/customer/zed", wantErr: devpki.ErrBadName},
		{name: "negative ttl", leaf: "zed", spiffeID: "spiffe://bank.local/customer/zed", ttl: -time.Hour, wantErr: pki.ErrBadValidity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, dir)
			results, err := p.Issue(tt.leaf, tt.spiffeID, tt.ttl)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("Issue = %v, want %v mentioning %q", err, tt.wantErr, tt.wantText)
			}
			if len(results) != 0 {
				t.Errorf("failed Issue reported %v", results)
			}
			if diff := changed(before, snapshot(t, dir)); len(diff) != 0 {
				t.Fatalf("a failed Issue changed %v", diff)
			}
		})
	}

	empty := filepath.Join(t.TempDir(), "empty")
	if _, err := mustNew(t, empty).Issue("alice", "", 0); !errors.Is(err, devpki.ErrNoCA) {
		t.Errorf("Issue without a CA = %v, want ErrNoCA", err)
	}
	if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Issue without a CA created %s", empty)
	}
}

func TestRevoke(t *testing.T) {
	p, dir := newPKI(t)
	firstRevoked := readCRL(t, dir).RevokedCertificateEntries[0]
	tests := []struct {
		name       string
		leaf       string
		wantErr    error
		wantNumber int64
		wantListed []string
	}{
		{name: "alice", leaf: "alice", wantNumber: 2, wantListed: []string{"alice", "revoked"}},
		{name: "again changes nothing", leaf: "alice", wantNumber: 2, wantListed: []string{"alice", "revoked"}},
		{name: "a service", leaf: "payments", wantNumber: 3, wantListed: []string{"alice", "payments", "revoked"}},
		{name: "rogue is not ours", leaf: "rogue", wantErr: devpki.ErrNotBankIssued},
		{name: "self-signed is not ours", leaf: "selfsigned", wantErr: devpki.ErrNotBankIssued},
		{name: "unknown name", leaf: "nobody", wantErr: fs.ErrNotExist},
		{name: "bad name", leaf: "../alice", wantErr: devpki.ErrBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, dir)
			_, err := p.Revoke(tt.leaf)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Revoke = %v, want %v", err, tt.wantErr)
				}
				if diff := changed(before, snapshot(t, dir)); len(diff) != 0 {
					t.Fatalf("a failed Revoke changed %v", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			crl := readCRL(t, dir)
			var want []string
			for _, name := range tt.wantListed {
				want = append(want, serialOf(t, dir, name))
			}
			slices.Sort(want)
			if got := revokedSerials(crl); !slices.Equal(got, want) || crl.Number.Int64() != tt.wantNumber {
				t.Errorf("CRL #%v lists %v, want #%d listing %v", crl.Number, got, tt.wantNumber, want)
			}
			for _, e := range crl.RevokedCertificateEntries {
				if e.SerialNumber.Cmp(firstRevoked.SerialNumber) == 0 && !e.RevocationTime.Equal(firstRevoked.RevocationTime) {
					t.Errorf("the older entry's revocation time changed from %s to %s", firstRevoked.RevocationTime, e.RevocationTime)
				}
			}
			out, err := openssl(t, dir, "verify", "-crl_check", "-CRLfile", devpki.CRLFile, "-CAfile", devpki.BundleFile,
				"-untrusted", tt.leaf+".crt", tt.leaf+".crt")
			if err == nil || !strings.Contains(out, "certificate revoked") {
				t.Errorf("openssl still accepts %s with the CRL: %v\n%s", tt.leaf, err, out)
			}
		})
	}
	// Init keeps what Revoke added.
	if _, err := p.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if got := len(readCRL(t, dir).RevokedCertificateEntries); got != 3 {
		t.Errorf("after Init the CRL lists %d serials, want 3", got)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []devpki.Option
	}{
		{name: "unknown key type", opts: []devpki.Option{devpki.WithKeyType("dsa-512")}},
		{name: "zero leaf ttl", opts: []devpki.Option{devpki.WithLeafTTL(0)}},
		{name: "negative CA ttl", opts: []devpki.Option{devpki.WithCATTL(-time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := devpki.New(t.TempDir(), tt.opts...); err == nil {
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func p12Files(names ...string) []string {
	var files []string
	for _, n := range names {
		files = append(files, n+".p12")
	}
	slices.Sort(files)
	return files
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		tb.Fatal(err)
	}
	return string(data)
}

func mustWrite(tb testing.TB, path, data string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func mustRemove(tb testing.TB, path string) {
	tb.Helper()
	if err := os.Remove(path); err != nil {
		tb.Fatal(err)
	}
}
