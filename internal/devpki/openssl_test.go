package devpki_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"mtlsbank/internal/devpki"
	"mtlsbank/internal/pki"
)

// TestOpenSSLVerify proves with a stock tool that each certificate of the dev PKI is
// good, or bad for exactly the reason its name says. The flags are those of a verifier
// configured like the services (nginx `ssl_verify_client` with `ssl_crl`): the root as
// the only trust anchor, intermediates.crt as untrusted chain material, and every CRL
// of crl.pem checked for every certificate of the chain.
func TestOpenSSLVerify(t *testing.T) {
	_, dir := newPKI(t)
	crl := crlCheckAll
	tests := []struct {
		name    string
		purpose string
		extra   []string
		wantErr string // regexp over openssl's output; "" = must verify
	}{
		{name: "teller", purpose: "sslclient"},
		{name: "alice", purpose: "sslclient"},
		{name: "bob", purpose: "sslclient"},
		{name: "auditor", purpose: "sslclient"},
		{name: "intern", purpose: "sslclient"},
		{name: "accounts", purpose: "sslclient"},
		{name: "payments", purpose: "sslclient"},
		{name: "accounts", purpose: "sslserver"},
		{name: "payments", purpose: "sslserver"},
		{name: "teller", purpose: "sslclient", extra: crl},
		{name: "alice", purpose: "sslclient", extra: crl},
		{name: "bob", purpose: "sslclient", extra: crl},
		{name: "auditor", purpose: "sslclient", extra: crl},
		{name: "intern", purpose: "sslclient", extra: crl},
		{name: "accounts", purpose: "sslclient", extra: crl},
		{name: "payments", purpose: "sslclient", extra: crl},
		{name: "accounts", purpose: "sslserver", extra: crl},
		{name: "payments", purpose: "sslserver", extra: crl},
		{name: "teller", purpose: "sslserver", wantErr: `unsu(itable|pported) certificate purpose`},
		{name: "expired", purpose: "sslclient", wantErr: `certificate has expired`},
		{name: "notyet", purpose: "sslclient", wantErr: `certificate is not yet valid`},
		{name: "rogue", purpose: "sslclient", wantErr: `unable to get local issuer certificate`},
		{name: "selfsigned", purpose: "sslclient", wantErr: `self[- ]signed certificate`},
		{name: "serveronly", purpose: "sslclient", wantErr: `unsu(itable|pported) certificate purpose`},
		{name: "cacert", purpose: "sslclient", wantErr: `unsu(itable|pported) certificate purpose`},
		// Without the CRL the revoked certificate is fine: only the CRL stops it.
		{name: "revoked", purpose: "sslclient"},
		{name: "revoked", purpose: "sslclient", extra: crl, wantErr: `certificate revoked`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+tt.purpose+" "+strings.Join(tt.extra, " "), func(t *testing.T) {
			args := append([]string{"verify", "-x509_strict", "-CAfile", devpki.BundleFile, "-untrusted", devpki.IntermediatesFile,
				"-purpose", tt.purpose}, tt.extra...)
			out, err := openssl(t, dir, append(args, tt.name+".crt")...)
			if tt.wantErr == "" {
				if err != nil || !strings.Contains(out, tt.name+".crt: OK") {
					t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("openssl %s succeeded, want %q\n%s", strings.Join(args, " "), tt.wantErr, out)
			}
			if !regexp.MustCompile(tt.wantErr).MatchString(out) {
				t.Fatalf("openssl %s failed for another reason, want %q:\n%s", strings.Join(args, " "), tt.wantErr, out)
			}
		})
	}

	t.Run("the chain in NAME.crt is enough", func(t *testing.T) {
		for _, name := range []string{"teller", "alice", "accounts", "payments"} {
			out, err := openssl(t, dir, append([]string{"verify", "-x509_strict", "-CAfile", devpki.BundleFile, "-untrusted", name + ".crt"},
				append(crlCheckAll, name+".crt")...)...)
			if err != nil {
				t.Errorf("openssl verify %s with its own chain: %v\n%s", name, err, out)
			}
		}
	})
	t.Run("the intermediate is not a trust anchor", func(t *testing.T) {
		out, err := openssl(t, dir, "verify", "-CAfile", devpki.IntermediatesFile, "alice.crt")
		if err == nil || !strings.Contains(out, "unable to get issuer certificate") {
			t.Errorf("openssl verify with only the intermediate as CA file: %v, want a chain that does not end at a root\n%s", err, out)
		}
	})
}

// crlCheckAll makes openssl verify check the CRL of every certificate in the chain, as
// nginx does with ssl_crl.
var crlCheckAll = []string{"-crl_check_all", "-CRLfile", devpki.CRLFile}

// TestOpenSSLTwoIntermediates builds, with certgen's own code paths, one root and two
// intermediates (a rollover), leaves under each, and proves with openssl that every
// good leaf verifies against the one crl.pem, and that revoking one intermediate refuses
// exactly its leaves (a bug that refuses everything fails this test too).
func TestOpenSSLTwoIntermediates(t *testing.T) {
	p, dir := newPKI(t)
	if _, err := p.Rollover(); err != nil {
		t.Fatalf("Rollover: %v", err)
	}
	// alice and accounts move to the new intermediate; the rest stay on the old one.
	for _, name := range []string{"alice", "accounts"} {
		if _, err := p.Issue(name, "", 0); err != nil {
			t.Fatalf("Issue %s: %v", name, err)
		}
	}
	if _, err := p.Issue("carol", "spiffe://bank.local/customer/carol", 0); err != nil {
		t.Fatalf("Issue carol: %v", err)
	}
	if n := len(readChain(t, filepath.Join(dir, devpki.IntermediatesFile))); n != 2 {
		t.Fatalf("intermediates.crt holds %d certificates, want both intermediates", n)
	}
	if n := len(readCRLs(t, dir)); n != 3 {
		t.Fatalf("crl.pem holds %d CRLs, want root, old and new intermediate", n)
	}
	newLeaves := []string{"alice", "accounts", "carol"}
	oldLeaves := []string{"teller", "bob", "auditor", "intern", "payments"}
	oldInter := readChain(t, filepath.Join(dir, "ca/intermediate.crt"))[0]
	for _, name := range oldLeaves {
		if pki.SignedBy(readChain(t, filepath.Join(dir, name+".crt"))[0], oldInter) != nil {
			t.Fatalf("%s is not a leaf of the old intermediate", name)
		}
	}

	verify := func(t *testing.T, name string) (string, error) {
		return openssl(t, dir, append([]string{"verify", "-x509_strict", "-CAfile", devpki.BundleFile,
			"-untrusted", devpki.IntermediatesFile}, append(crlCheckAll, name+".crt")...)...)
	}
	check := func(t *testing.T, names []string, wantErr string) {
		t.Helper()
		for _, name := range names {
			out, err := verify(t, name)
			switch {
			case wantErr == "" && (err != nil || !strings.Contains(out, name+".crt: OK")):
				t.Errorf("openssl verify %s: %v\n%s", name, err, out)
			case wantErr != "" && (err == nil || !regexp.MustCompile(wantErr).MatchString(out)):
				t.Errorf("openssl verify %s: %v, want %q\n%s", name, err, wantErr, out)
			}
		}
	}
	t.Run("overlap: leaves of both intermediates verify", func(t *testing.T) {
		check(t, append(slices.Clone(newLeaves), oldLeaves...), "")
		check(t, []string{"revoked"}, `error 23 at 0 depth lookup: certificate revoked`)
	})

	if _, err := p.RevokeCA("intermediate"); err != nil {
		t.Fatalf("RevokeCA: %v", err)
	}
	t.Run("after revoking the old intermediate", func(t *testing.T) {
		// depth 1: the intermediate itself is what the root's CRL lists.
		check(t, oldLeaves, `error 23 at 1 depth lookup: certificate revoked`)
		check(t, newLeaves, "")
	})

	if _, err := p.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Run("init reissues the old intermediate's leaves from the new one", func(t *testing.T) {
		check(t, append(slices.Clone(newLeaves), oldLeaves...), "")
		check(t, []string{"revoked"}, `error 23 at 0 depth lookup: certificate revoked`)
	})
}

// TestOpenSSLReadsFiles proves that OpenSSL 3 reads every .p12 (modern encryption, no
// -legacy, the entry named NAME) and every key.
func TestOpenSSLReadsFiles(t *testing.T) {
	_, dir := newPKI(t)
	for _, name := range devpki.Names() {
		t.Run(name, func(t *testing.T) {
			out, err := openssl(t, dir, "pkcs12", "-info", "-in", name+".p12", "-passin", "pass:"+devpki.DefaultP12Password, "-nokeys")
			if err != nil {
				t.Fatalf("openssl pkcs12 %s.p12: %v\n%s", name, err, out)
			}
			if !strings.Contains(out, "AES-256-CBC") {
				t.Errorf("%s.p12 is not AES-256 encrypted:\n%s", name, out)
			}
			// The leaf's certificate bag; the key bag's is checked in internal/pki.
			if !strings.Contains(out, "friendlyName: "+name+"\n") {
				t.Errorf("%s.p12 does not name its entry %s:\n%s", name, name, out)
			}
			if out, err := openssl(t, dir, "pkcs12", "-info", "-in", name+".p12", "-passin", "pass:wrong", "-nokeys", "-noout"); err == nil {
				t.Errorf("openssl pkcs12 with the wrong password succeeded:\n%s", out)
			}
			if out, err := openssl(t, dir, "pkey", "-in", name+".key", "-noout"); err != nil {
				t.Errorf("openssl pkey %s.key: %v\n%s", name, err, out)
			}
		})
	}
}

// TestOpenSSLP12Chain proves with `openssl pkcs12 -info` which certificates each .p12
// holds: by default the leaf and its intermediate, with WithP12FullChain the root too
// (the rogue leaf's own root; nothing more for the self-signed leaf).
func TestOpenSSLP12Chain(t *testing.T) {
	tests := []struct {
		name     string
		full     bool
		leaf     string
		subjects []string // common names, in file order
	}{
		{name: "default alice", leaf: "alice", subjects: []string{"alice", "mtlsbank Dev Intermediate CA"}},
		{name: "full alice", full: true, leaf: "alice", subjects: []string{"alice", "mtlsbank Dev Intermediate CA", "mtlsbank Dev Root CA"}},
		{name: "full accounts", full: true, leaf: "accounts", subjects: []string{"accounts", "mtlsbank Dev Intermediate CA", "mtlsbank Dev Root CA"}},
		{name: "full rogue", full: true, leaf: "rogue", subjects: []string{"rogue", "mtlsbank Rogue Root CA"}},
		{name: "full selfsigned", full: true, leaf: "selfsigned", subjects: []string{"selfsigned"}},
	}
	_, leafAndInter := newPKI(t)
	_, full := newPKI(t, devpki.WithP12FullChain(true))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := leafAndInter
			if tt.full {
				dir = full
			}
			out, err := openssl(t, dir, "pkcs12", "-info", "-in", tt.leaf+".p12", "-passin", "pass:"+devpki.DefaultP12Password, "-nokeys")
			if err != nil {
				t.Fatalf("openssl pkcs12 %s.p12: %v\n%s", tt.leaf, err, out)
			}
			var got []string
			for _, line := range strings.Split(out, "\n") {
				if cn, ok := strings.CutPrefix(line, "subject=CN = "); ok {
					got = append(got, strings.TrimSpace(cn))
				} else if cn, ok := strings.CutPrefix(line, "subject=CN="); ok {
					got = append(got, strings.TrimSpace(cn))
				}
			}
			if !slices.Equal(got, tt.subjects) {
				t.Errorf("%s.p12 holds %q, want %q\n%s", tt.leaf, got, tt.subjects, out)
			}
		})
	}
}

// TestKeytoolReadsP12 proves that Java's keytool opens NAME.p12 with the default
// password as one private-key entry under the alias NAME (the friendlyName that
// internal/pki adds), whose chain is leaf + intermediate, or leaf + intermediate + root
// with WithP12FullChain; and that Java reads the key by that alias (the README's
// command that copies the entry under another alias).
func TestKeytoolReadsP12(t *testing.T) {
	keytool, err := exec.LookPath("keytool")
	if err != nil {
		t.Skip("SKIP: keytool (Java) is not installed; .p12 not checked with Java")
	}
	_, leafAndInter := newPKI(t)
	_, full := newPKI(t, devpki.WithP12FullChain(true))
	tests := []struct {
		name      string
		dir       string
		wantChain string
	}{
		{name: "leaf and intermediate", dir: leafAndInter, wantChain: "Certificate chain length: 2"},
		{name: "full chain", dir: full, wantChain: "Certificate chain length: 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(keytool, "-list", "-v", "-keystore", filepath.Join(tt.dir, "alice.p12"),
				"-storetype", "PKCS12", "-storepass", devpki.DefaultP12Password).CombinedOutput()
			if err != nil {
				t.Fatalf("keytool -list: %v\n%s", err, out)
			}
			for _, want := range []string{"Your keystore contains 1 entry", "Alias name: alice\n", "Entry type: PrivateKeyEntry", tt.wantChain} {
				if !strings.Contains(string(out), want) {
					t.Errorf("keytool output lacks %q:\n%s", want, out)
				}
			}
			if out, err := exec.Command(keytool, "-list", "-keystore", filepath.Join(tt.dir, "alice.p12"),
				"-storetype", "PKCS12", "-storepass", "wrongpass").CombinedOutput(); err == nil || !strings.Contains(string(out), "password was incorrect") {
				t.Errorf("keytool with the wrong password: %v\n%s", err, out)
			}
			// The README's command that copies the entry under another alias.
			dest := filepath.Join(t.TempDir(), "my.p12")
			if out, err := exec.Command(keytool, "-importkeystore", "-noprompt",
				"-srckeystore", filepath.Join(tt.dir, "alice.p12"), "-srcstoretype", "PKCS12", "-srcstorepass", devpki.DefaultP12Password,
				"-srcalias", "alice", "-destkeystore", dest, "-deststoretype", "PKCS12", "-deststorepass", devpki.DefaultP12Password,
				"-destalias", "my-client").CombinedOutput(); err != nil {
				t.Fatalf("keytool -importkeystore -srcalias alice: %v\n%s", err, out)
			}
			out, err = exec.Command(keytool, "-list", "-v", "-keystore", dest, "-storetype", "PKCS12",
				"-storepass", devpki.DefaultP12Password).CombinedOutput()
			if err != nil {
				t.Fatalf("keytool -list %s: %v\n%s", dest, err, out)
			}
			for _, want := range []string{"Alias name: my-client\n", "Entry type: PrivateKeyEntry", tt.wantChain} {
				if !strings.Contains(string(out), want) {
					t.Errorf("copied keystore lacks %q:\n%s", want, out)
				}
			}
			// What Java wrote holds alice's key and certificate: it decrypted the key.
			copied, err := os.ReadFile(dest)
			if err != nil {
				t.Fatal(err)
			}
			alice := readChain(t, filepath.Join(tt.dir, "alice.crt"))[0]
			if got, _, err := pki.DecodePKCS12(copied, devpki.DefaultP12Password); err != nil || !got.Cert.Equal(alice) {
				t.Errorf("the entry Java copied is not alice's key and certificate: %v", err)
			}
		})
	}
}
