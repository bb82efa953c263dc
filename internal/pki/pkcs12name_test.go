package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"slices"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"
)

// These tests look inside the files: what setPKCS12FriendlyName keeps, and how the
// reader refuses structures that only a crafted file (with a valid MAC) can reach.

const testPassword = "changeit"

// p12Fixture is alice's leaf, her intermediate, and the file enc makes of them.
type p12Fixture struct {
	leaf  *Leaf
	inter *x509.Certificate
	data  []byte
}

func newP12Fixture(tb testing.TB, enc *pkcs12.Encoder, password string) p12Fixture {
	tb.Helper()
	root, err := NewRootCA("test root")
	if err != nil {
		tb.Fatal(err)
	}
	inter, err := root.NewIntermediate("test intermediate")
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := inter.Issue(Request{CommonName: "alice", Usage: ClientAuth})
	if err != nil {
		tb.Fatal(err)
	}
	data, err := enc.Encode(leaf.Key, leaf.Cert, []*x509.Certificate{inter.Cert}, password)
	if err != nil {
		tb.Fatalf("go-pkcs12 Encode: %v", err)
	}
	return p12Fixture{leaf: leaf, inter: inter.Cert, data: data}
}

func mustOpen(tb testing.TB, data []byte) *pfxFile {
	tb.Helper()
	f, err := openPFX(data, testPassword)
	if err != nil {
		tb.Fatalf("openPFX: %v", err)
	}
	return f
}

// mutate opens data, lets change alter it, and encodes it again with a valid MAC.
func mutate(tb testing.TB, data []byte, change func(f *pfxFile)) []byte {
	tb.Helper()
	f := mustOpen(tb, data)
	change(f)
	out, err := f.marshal()
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return out
}

// certSafe returns the index of the encrypted SafeContents.
func certSafe(tb testing.TB, f *pfxFile) int {
	tb.Helper()
	for i, sc := range f.safes {
		if sc.enc != nil {
			return i
		}
	}
	tb.Fatal("no encrypted SafeContents")
	return -1
}

// TestSetPKCS12FriendlyNameKeeps checks what the step must not change: the shrouded
// key, the localKeyIds, the CA certificate bags, the MAC salt and iterations and the
// PBKDF2 salt and iterations (so the same key); and that the IV is fresh.
func TestSetPKCS12FriendlyNameKeeps(t *testing.T) {
	fx := newP12Fixture(t, pkcs12.Modern, testPassword)
	named, err := setPKCS12FriendlyName(fx.data, testPassword, "alice")
	if err != nil {
		t.Fatalf("setPKCS12FriendlyName: %v", err)
	}
	before, after := mustOpen(t, fx.data), mustOpen(t, named)

	if b, a := before.pdu.MacData, after.pdu.MacData; !bytes.Equal(b.MacSalt, a.MacSalt) || b.Iterations != a.Iterations ||
		!b.Mac.Algorithm.Algorithm.Equal(a.Mac.Algorithm.Algorithm) || bytes.Equal(b.Mac.Digest, a.Mac.Digest) {
		t.Errorf("MacData: before %+v, after %+v; want the same salt, iterations and algorithm, a new digest", b, a)
	}
	if len(before.safes) != len(after.safes) {
		t.Fatalf("%d SafeContents became %d", len(before.safes), len(after.safes))
	}
	for i := range before.safes {
		b, a := before.safes[i], after.safes[i]
		if len(b.bags) != len(a.bags) || !b.info.ContentType.Equal(a.info.ContentType) {
			t.Fatalf("SafeContents %d: %d bags of %v became %d of %v", i, len(b.bags), b.info.ContentType, len(a.bags), a.info.ContentType)
		}
		for j := range b.bags {
			if !b.bags[j].ID.Equal(a.bags[j].ID) || !bytes.Equal(b.bags[j].Value.FullBytes, a.bags[j].Value.FullBytes) {
				t.Errorf("SafeContents %d bag %d: type or value changed", i, j)
			}
		}
		if b.enc == nil {
			continue
		}
		bAlg, aAlg := b.enc.EncryptedContentInfo.ContentEncryptionAlgorithm, a.enc.EncryptedContentInfo.ContentEncryptionAlgorithm
		bParams, bKDF, err1 := parsePBES2(bAlg)
		aParams, aKDF, err2 := parsePBES2(aAlg)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bKDF.Salt, aKDF.Salt) || bKDF.Iterations != aKDF.Iterations || !bytes.Equal(b.key, a.key) ||
			!aKDF.PRF.Algorithm.Equal(oidHMACWithSHA256) || !aParams.Scheme.Algorithm.Equal(oidAES256CBC) {
			t.Errorf("PBES2 of the certificates: before %+v, after %+v; want the same salt, iterations, PRF and key", bKDF, aKDF)
		}
		if bytes.Equal(bParams.Scheme.Parameters.FullBytes, aParams.Scheme.Parameters.FullBytes) {
			t.Error("the certificates were encrypted again under the same IV")
		}
	}

	key, leaf, err := after.keyEntry()
	if err != nil {
		t.Fatalf("keyEntry: %v", err)
	}
	for _, b := range []*safeBag{key.bag(), leaf.bag()} {
		ids := make([]string, 0, len(b.Attributes))
		for _, a := range b.Attributes {
			ids = append(ids, a.ID.String())
		}
		slices.Sort(ids)
		if want := []string{oidFriendlyName.String(), oidLocalKeyID.String()}; !slices.Equal(ids, want) {
			t.Errorf("bag %v has attributes %v, want %v", b.ID, ids, want)
		}
	}
	var cert struct {
		ID   asn1.ObjectIdentifier
		Data []byte `asn1:"tag:0,explicit"`
	}
	if err := unmarshalAll(leaf.bag().Value.Bytes, &cert); err != nil || !bytes.Equal(cert.Data, fx.leaf.Cert.Raw) {
		t.Errorf("the certificate bag named is not the leaf: %v", err)
	}
	oldKey, _, err := before.keyEntry()
	if err != nil {
		t.Fatal(err)
	}
	oldID, _ := oldKey.bag().attribute(oidLocalKeyID)
	newID, _ := key.bag().attribute(oidLocalKeyID)
	if !bytes.Equal(oldID, newID) {
		t.Error("the localKeyId changed")
	}
	for i, sc := range after.safes {
		for j, b := range sc.bags {
			if b.ID.Equal(oidCertBag) && (i != leaf.safe || j != leaf.index) && len(b.Attributes) != 0 {
				t.Errorf("CA certificate bag %d/%d got attributes %v", i, j, b.Attributes)
			}
		}
	}
}

// TestSetPKCS12FriendlyNameReplaces: naming twice leaves one friendlyName, the last.
func TestSetPKCS12FriendlyNameReplaces(t *testing.T) {
	fx := newP12Fixture(t, pkcs12.Modern, testPassword)
	data := fx.data
	for _, name := range []string{"alice", "bob"} {
		var err error
		if data, err = setPKCS12FriendlyName(data, testPassword, name); err != nil {
			t.Fatalf("setPKCS12FriendlyName(%q): %v", name, err)
		}
	}
	if got, err := PKCS12FriendlyName(data, testPassword); err != nil || got != "bob" {
		t.Errorf("PKCS12FriendlyName = %q, %v; want bob", got, err)
	}
	key, leaf, err := mustOpen(t, data).keyEntry()
	if err != nil {
		t.Fatal(err)
	}
	if n, m := len(key.bag().Attributes), len(leaf.bag().Attributes); n != 2 || m != 2 {
		t.Errorf("key bag has %d attributes, leaf bag %d; want 2 each", n, m)
	}
	if _, _, err := DecodePKCS12(data, testPassword); err != nil {
		t.Errorf("DecodePKCS12: %v", err)
	}
}

// TestPKCS12FormatErrors: files of other encoders and crafted structures (with valid
// MACs, so that the parser behind the MAC is reached) are refused with a clear error.
func TestPKCS12FormatErrors(t *testing.T) {
	fx := newP12Fixture(t, pkcs12.Modern, testPassword)
	named, err := setPKCS12FriendlyName(fx.data, testPassword, "alice")
	if err != nil {
		t.Fatal(err)
	}
	encode := func(enc *pkcs12.Encoder, password string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return newP12Fixture(t, enc, password).data }
	}
	crafted := func(change func(t *testing.T, f *pfxFile)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return mutate(t, named, func(f *pfxFile) { change(t, f) }) }
	}
	editPBKDF2 := func(edit func(*pbkdf2Params)) func(t *testing.T, f *pfxFile) {
		return func(t *testing.T, f *pfxFile) {
			sc := &f.safes[certSafe(t, f)]
			alg := &sc.enc.EncryptedContentInfo.ContentEncryptionAlgorithm
			params, kdf, err := parsePBES2(*alg)
			if err != nil {
				t.Fatal(err)
			}
			edit(&kdf)
			if params.KDF.Parameters.FullBytes, err = asn1.Marshal(kdf); err != nil {
				t.Fatal(err)
			}
			if alg.Parameters.FullBytes, err = asn1.Marshal(params); err != nil {
				t.Fatal(err)
			}
			sc.changed = true
		}
	}
	tests := []struct {
		name     string
		data     func(t *testing.T) []byte
		password string
		wantText string
		readOnly bool // PKCS12FriendlyName refuses it; setPKCS12FriendlyName may repair it
	}{
		{name: "no MAC", data: encode(pkcs12.Passwordless, ""), wantText: "no MAC"},
		{name: "SHA-1 MAC (go-pkcs12 Legacy)", data: encode(pkcs12.LegacyDES, testPassword), password: testPassword, wantText: "MAC algorithm 1.3.14.3.2.26"},
		{name: "PBMAC1 (go-pkcs12 Modern2026)", data: encode(pkcs12.Modern2026, testPassword), password: testPassword, wantText: "MAC algorithm 1.2.840.113549.1.5.14"},
		{name: "MAC iterations beyond the bound", data: encode(pkcs12.Modern.WithIterations(maxPKCS12Iterations+1), testPassword), password: testPassword, wantText: "MAC iterations"},
		{name: "a trust store: no key", password: testPassword, wantText: "no key bag", data: func(t *testing.T) []byte {
			data, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{fx.inter}, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}},
		{name: "key bag without localKeyId", password: testPassword, wantText: "no localKeyId", data: crafted(func(t *testing.T, f *pfxFile) {
			key, _, _ := f.keyEntry()
			key.bag().Attributes = nil
			f.safes[key.safe].changed = true
		})},
		{name: "no certificate with the key's localKeyId", password: testPassword, wantText: "no certificate bag has the key's localKeyId", data: crafted(func(t *testing.T, f *pfxFile) {
			_, leaf, _ := f.keyEntry()
			leaf.bag().setAttribute(oidLocalKeyID, asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: []byte{4, 1, 0}})
			f.safes[leaf.safe].changed = true
		})},
		{name: "two key bags", password: testPassword, wantText: "more than one key bag", data: crafted(func(t *testing.T, f *pfxFile) {
			key, _, _ := f.keyEntry()
			sc := &f.safes[key.safe]
			sc.bags, sc.changed = append(sc.bags, *key.bag()), true
		})},
		{name: "two certificates with the key's localKeyId", password: testPassword, wantText: "more than one certificate bag", data: crafted(func(t *testing.T, f *pfxFile) {
			_, leaf, _ := f.keyEntry()
			sc := &f.safes[leaf.safe]
			sc.bags, sc.changed = append(sc.bags, *leaf.bag()), true
		})},
		{name: "friendlyName not a BMPString", password: testPassword, wantText: "not one BMPString", readOnly: true, data: crafted(func(t *testing.T, f *pfxFile) {
			key, _, _ := f.keyEntry()
			utf8Name, _ := asn1.MarshalWithParams("alice", "utf8")
			key.bag().setAttribute(oidFriendlyName, asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: utf8Name})
			f.safes[key.safe].changed = true
		})},
		{name: "certificates encrypted with PBKDF2-HMAC-SHA-512", password: testPassword, wantText: "PBES2 other than",
			data: crafted(editPBKDF2(func(k *pbkdf2Params) { k.PRF.Algorithm = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11} }))},
		{name: "PBKDF2 iterations beyond the bound", password: testPassword, wantText: "PBKDF2 iterations",
			data: crafted(editPBKDF2(func(k *pbkdf2Params) { k.Iterations = maxPKCS12Iterations + 1 }))},
		{name: "encryptedData version 1", password: testPassword, wantText: "encryptedData version 1", data: crafted(func(t *testing.T, f *pfxFile) {
			sc := &f.safes[certSafe(t, f)]
			sc.enc.Version, sc.changed = 1, true
		})},
		{name: "an enveloped-data SafeContents", password: testPassword, wantText: "content type 1.2.840.113549.1.7.3", data: crafted(func(t *testing.T, f *pfxFile) {
			f.safes = append(f.safes, safeContents{info: contentInfo{ContentType: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}}})
		})},
		{name: "PFX version 2", password: testPassword, wantText: "version 3", data: crafted(func(t *testing.T, f *pfxFile) { f.pdu.Version = 2 })},
		{name: "certificates not padded", password: testPassword, wantText: "bad padding", data: crafted(func(t *testing.T, f *pfxFile) {
			// Encrypt the SafeContents with a last block that is not PKCS#7 padding.
			sc := &f.safes[certSafe(t, f)]
			plain, err := asn1.Marshal(sc.bags)
			if err != nil {
				t.Fatal(err)
			}
			eci := &sc.enc.EncryptedContentInfo
			alg, ct, err := cbcEncrypt(sc.key, eci.ContentEncryptionAlgorithm, append(plain, bytes.Repeat([]byte{0xEE}, 16-len(plain)%16)...))
			if err != nil {
				t.Fatal(err)
			}
			eci.ContentEncryptionAlgorithm, eci.EncryptedContent = alg, ct[:len(ct)-16] // drop the real padding block
			content, err := asn1.Marshal(*sc.enc)
			if err != nil {
				t.Fatal(err)
			}
			sc.info.Content = asn1.RawValue{Class: asn1.ClassContextSpecific, IsCompound: true, Bytes: content}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data(t)
			for _, call := range []struct {
				name string
				fn   func() error
			}{
				{"PKCS12FriendlyName", func() error { _, err := PKCS12FriendlyName(data, tt.password); return err }},
				{"setPKCS12FriendlyName", func() error { _, err := setPKCS12FriendlyName(data, tt.password, "bob"); return err }},
			} {
				if tt.readOnly && call.name == "setPKCS12FriendlyName" {
					continue
				}
				if err := call.fn(); !errors.Is(err, ErrPKCS12Format) || !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("%s = %v, want ErrPKCS12Format mentioning %q", call.name, err, tt.wantText)
				}
			}
		})
	}
}

// FuzzPKCS12FriendlyName: any file is read or refused, never a panic; a file that
// setPKCS12FriendlyName accepts comes out with the name. Most mutations stop at the MAC;
// FuzzPKCS12SafeContents reaches behind it.
func FuzzPKCS12FriendlyName(f *testing.F) {
	fx := newP12Fixture(f, pkcs12.Modern, testPassword)
	named, err := setPKCS12FriendlyName(fx.data, testPassword, "alice")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fx.data)
	f.Add(named)
	f.Add(named[:len(named)-40])
	f.Add(newP12Fixture(f, pkcs12.LegacyDES, testPassword).data)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFuzzed(t, data, testPassword)
	})
}

// FuzzPKCS12SafeContents wraps arbitrary bytes as the plain SafeContents of a file with
// a valid MAC, so that the bag and attribute parsing behind the MAC is fuzzed too.
func FuzzPKCS12SafeContents(f *testing.F) {
	fx := newP12Fixture(f, pkcs12.Modern, testPassword)
	named, err := setPKCS12FriendlyName(fx.data, testPassword, "alice")
	if err != nil {
		f.Fatal(err)
	}
	pf := mustOpen(f, named)
	key, leaf, err := pf.keyEntry()
	if err != nil {
		f.Fatal(err)
	}
	for _, bags := range [][]safeBag{{*key.bag(), *leaf.bag()}, {*key.bag()}, {*leaf.bag(), *key.bag(), *leaf.bag()}} {
		der, err := asn1.Marshal(bags)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, safe []byte) {
		octets, err := asn1.Marshal(safe)
		if err != nil {
			t.Fatal(err)
		}
		file := &pfxFile{
			pdu: pfxPDU{Version: 3, AuthSafe: contentInfo{ContentType: oidData}, MacData: macData{
				Mac: digestInfo{Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidSHA256}}, MacSalt: []byte("salt"), Iterations: 1}},
			password: []byte{0, 'p', 0, 'w', 0, 0},
			safes: []safeContents{{info: contentInfo{ContentType: oidData,
				Content: asn1.RawValue{Class: asn1.ClassContextSpecific, IsCompound: true, Bytes: octets}}}},
		}
		data, err := file.marshal()
		if err != nil {
			t.Fatal(err)
		}
		checkFuzzed(t, data, "pw")
	})
}

// checkFuzzed reads and names data: errors are fine, panics are not, and a name set
// must read back.
func checkFuzzed(t *testing.T, data []byte, password string) {
	t.Helper()
	if _, err := PKCS12FriendlyName(data, password); err != nil && !errors.Is(err, ErrPKCS12MAC) && !errors.Is(err, ErrPKCS12Format) {
		t.Fatalf("PKCS12FriendlyName: unexpected error %v", err)
	}
	out, err := setPKCS12FriendlyName(data, password, "bob")
	if err != nil {
		return
	}
	if got, err := PKCS12FriendlyName(out, password); err != nil || got != "bob" {
		t.Fatalf("after setPKCS12FriendlyName(bob): PKCS12FriendlyName = %q, %v", got, err)
	}
}
