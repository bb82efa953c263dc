package pki

// go-pkcs12 (v0.7.4) pairs the key bag and the leaf's certificate bag with a localKeyId
// but cannot give them a friendlyName, the attribute that Java uses as the entry's
// alias and Windows/.NET as the certificate's FriendlyName. setPKCS12FriendlyName adds
// it to the file go-pkcs12 wrote: it checks the MAC, adds the attribute to the key bag
// (in the plain SafeContents; the key stays shrouded) and to the certificate bag with
// the same localKeyId (in the encrypted SafeContents, decrypted and encrypted again
// under the same PBES2 key, with a fresh IV), and computes the MAC again with the same
// salt and iterations. It handles exactly what go-pkcs12's Modern encoder writes
// (HMAC-SHA-256 MAC; PBES2 with PBKDF2-HMAC-SHA-256 and AES-256-CBC) and refuses
// anything else.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors of the PKCS#12 friendlyName step.
var (
	// ErrPKCS12MAC is returned when a PKCS#12 file's MAC does not match: the wrong
	// password, or a file altered after it was written.
	ErrPKCS12MAC = errors.New("PKCS#12 MAC does not match (wrong password or altered file)")
	// ErrPKCS12Format is returned for a PKCS#12 file this package cannot read or
	// rewrite: malformed, or with other algorithms than go-pkcs12's Modern encoder uses.
	ErrPKCS12Format = errors.New("unsupported or malformed PKCS#12 file")
	// ErrBadFriendlyName is returned for a name that cannot be a friendlyName.
	ErrBadFriendlyName = errors.New("bad PKCS#12 friendlyName")
)

// maxPKCS12Iterations bounds the KDF iterations of a file we read, so that a hostile
// file cannot make us spin: go-pkcs12 and OpenSSL write 2048, Java 10000.
const maxPKCS12Iterations = 100_000

var (
	oidData           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidKeyBag         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 1}
	oidShroudedKeyBag = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidCertBag        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidFriendlyName   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 20}
	oidLocalKeyID     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 21}
	oidSHA256         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// The ASN.1 structures of RFC 7292 (PKCS#12), RFC 5652 (CMS) and RFC 8018 (PBES2) that
// the step reads and writes. RawValue fields keep what it does not change byte for byte.
type (
	pfxPDU struct {
		Version  int
		AuthSafe contentInfo
		MacData  macData `asn1:"optional"`
	}
	contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
	}
	macData struct {
		Mac        digestInfo
		MacSalt    []byte
		Iterations int `asn1:"optional,default:1"`
	}
	digestInfo struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
	encryptedData struct {
		Version              int
		EncryptedContentInfo encryptedContentInfo
	}
	encryptedContentInfo struct {
		ContentType                asn1.ObjectIdentifier
		ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
		EncryptedContent           []byte `asn1:"tag:0,optional"`
	}
	safeBag struct {
		ID         asn1.ObjectIdentifier
		Value      asn1.RawValue  `asn1:"tag:0,explicit"`
		Attributes []bagAttribute `asn1:"set,optional"`
	}
	bagAttribute struct {
		ID     asn1.ObjectIdentifier
		Values asn1.RawValue `asn1:"set"`
	}
	pbes2Params struct {
		KDF    pkix.AlgorithmIdentifier
		Scheme pkix.AlgorithmIdentifier
	}
	pbkdf2Params struct {
		Salt       []byte
		Iterations int
		KeyLength  int                      `asn1:"optional"`
		PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
	}
)

// pfxFile is a PKCS#12 file opened with its password: MAC checked, SafeContents decrypted.
type pfxFile struct {
	pdu      pfxPDU
	password []byte // BMPString, zero-terminated, for the MAC key
	safes    []safeContents
}

// safeContents is one element of the AuthenticatedSafe and the bags it holds.
type safeContents struct {
	info    contentInfo
	bags    []safeBag
	enc     *encryptedData // nil for plain data
	key     []byte         // the PBES2 key of enc
	changed bool
}

// setPKCS12FriendlyName returns pfxData with the friendlyName name on its key bag and
// on the certificate bag with the same localKeyId (replacing any there), the MAC
// computed again. Every other byte of the file keeps its meaning.
func setPKCS12FriendlyName(pfxData []byte, password, name string) ([]byte, error) {
	value, err := friendlyNameValue(name)
	if err != nil {
		return nil, err
	}
	f, err := openPFX(pfxData, password)
	if err != nil {
		return nil, err
	}
	key, leaf, err := f.keyEntry()
	if err != nil {
		return nil, err
	}
	for _, b := range []*bagRef{key, leaf} {
		b.bag().setAttribute(oidFriendlyName, value)
		f.safes[b.safe].changed = true
	}
	return f.marshal()
}

// PKCS12FriendlyName returns the friendlyName of the key entry of a PKCS#12 file that
// EncodePKCS12 wrote ("" if it has none), after checking its MAC with password.
func PKCS12FriendlyName(pfxData []byte, password string) (string, error) {
	f, err := openPFX(pfxData, password)
	if err != nil {
		return "", err
	}
	key, _, err := f.keyEntry()
	if err != nil {
		return "", err
	}
	raw, ok := key.bag().attribute(oidFriendlyName)
	if !ok {
		return "", nil
	}
	var s asn1.RawValue
	if err := unmarshalAll(raw, &s); err != nil || s.Class != asn1.ClassUniversal || s.Tag != asn1.TagBMPString || len(s.Bytes)%2 != 0 {
		return "", fmt.Errorf("%w: friendlyName is not one BMPString", ErrPKCS12Format)
	}
	units := make([]uint16, len(s.Bytes)/2)
	for i := range units {
		units[i] = uint16(s.Bytes[2*i])<<8 | uint16(s.Bytes[2*i+1])
	}
	return string(utf16.Decode(units)), nil
}

// friendlyNameValue encodes name as the value set of a friendlyName attribute: one
// BMPString (UCS-2, so characters beyond U+FFFF are refused).
func friendlyNameValue(name string) (asn1.RawValue, error) {
	bmp, err := bmpString(name)
	if err != nil || name == "" {
		return asn1.RawValue{}, fmt.Errorf("%w %q: want a non-empty name of characters up to U+FFFF", ErrBadFriendlyName, name)
	}
	der, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagBMPString, Bytes: bmp})
	if err != nil {
		return asn1.RawValue{}, err
	}
	return asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: der}, nil
}

// bmpString encodes s as UCS-2 big-endian.
func bmpString(s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("not valid UTF-8")
	}
	out := make([]byte, 0, 2*len(s))
	for _, r := range s {
		if r > 0xFFFF {
			return nil, fmt.Errorf("character %U is beyond U+FFFF", r)
		}
		out = append(out, byte(r>>8), byte(r))
	}
	return out, nil
}

// openPFX parses pfxData, checks its MAC with password and decrypts its SafeContents.
func openPFX(pfxData []byte, password string) (*pfxFile, error) {
	bmp, err := bmpString(password)
	if err != nil {
		return nil, fmt.Errorf("%w: password: %v", ErrPKCS12Format, err)
	}
	f := &pfxFile{password: append(bmp, 0, 0)}
	if err := unmarshalAll(pfxData, &f.pdu); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPKCS12Format, err)
	}
	if f.pdu.Version != 3 || !f.pdu.AuthSafe.ContentType.Equal(oidData) {
		return nil, fmt.Errorf("%w: not a version 3, password-integrity PFX", ErrPKCS12Format)
	}
	var authSafe []byte
	if err := unmarshalAll(f.pdu.AuthSafe.Content.Bytes, &authSafe); err != nil {
		return nil, fmt.Errorf("%w: authSafe: %v", ErrPKCS12Format, err)
	}
	mac, err := f.mac(authSafe)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(mac, f.pdu.MacData.Mac.Digest) {
		return nil, ErrPKCS12MAC
	}
	var infos []contentInfo
	if err := unmarshalAll(authSafe, &infos); err != nil {
		return nil, fmt.Errorf("%w: AuthenticatedSafe: %v", ErrPKCS12Format, err)
	}
	for _, info := range infos {
		sc := safeContents{info: info}
		var plain []byte
		switch {
		case info.ContentType.Equal(oidData):
			if err := unmarshalAll(info.Content.Bytes, &plain); err != nil {
				return nil, fmt.Errorf("%w: data: %v", ErrPKCS12Format, err)
			}
		case info.ContentType.Equal(oidEncryptedData):
			sc.enc = new(encryptedData)
			if err := unmarshalAll(info.Content.Bytes, sc.enc); err != nil {
				return nil, fmt.Errorf("%w: encryptedData: %v", ErrPKCS12Format, err)
			}
			if sc.enc.Version != 0 {
				return nil, fmt.Errorf("%w: encryptedData version %d", ErrPKCS12Format, sc.enc.Version)
			}
			eci := sc.enc.EncryptedContentInfo
			if sc.key, err = pbes2Key(eci.ContentEncryptionAlgorithm, password); err != nil {
				return nil, err
			}
			if plain, err = cbcDecrypt(sc.key, eci.ContentEncryptionAlgorithm, eci.EncryptedContent); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: content type %v", ErrPKCS12Format, info.ContentType)
		}
		if err := unmarshalAll(plain, &sc.bags); err != nil {
			return nil, fmt.Errorf("%w: SafeContents: %v", ErrPKCS12Format, err)
		}
		f.safes = append(f.safes, sc)
	}
	return f, nil
}

// bagRef points at one bag of a pfxFile.
type bagRef struct {
	f           *pfxFile
	safe, index int
}

func (r *bagRef) bag() *safeBag { return &r.f.safes[r.safe].bags[r.index] }

// keyEntry finds the one key bag and the certificate bag that shares its localKeyId.
func (f *pfxFile) keyEntry() (key, leaf *bagRef, err error) {
	for i, sc := range f.safes {
		for j, b := range sc.bags {
			if b.ID.Equal(oidShroudedKeyBag) || b.ID.Equal(oidKeyBag) {
				if key != nil {
					return nil, nil, fmt.Errorf("%w: more than one key bag", ErrPKCS12Format)
				}
				key = &bagRef{f: f, safe: i, index: j}
			}
		}
	}
	if key == nil {
		return nil, nil, fmt.Errorf("%w: no key bag", ErrPKCS12Format)
	}
	id, ok := key.bag().attribute(oidLocalKeyID)
	if !ok {
		return nil, nil, fmt.Errorf("%w: the key bag has no localKeyId", ErrPKCS12Format)
	}
	for i, sc := range f.safes {
		for j, b := range sc.bags {
			if other, ok := b.attribute(oidLocalKeyID); ok && b.ID.Equal(oidCertBag) && bytes.Equal(other, id) {
				if leaf != nil {
					return nil, nil, fmt.Errorf("%w: more than one certificate bag has the key's localKeyId", ErrPKCS12Format)
				}
				leaf = &bagRef{f: f, safe: i, index: j}
			}
		}
	}
	if leaf == nil {
		return nil, nil, fmt.Errorf("%w: no certificate bag has the key's localKeyId", ErrPKCS12Format)
	}
	return key, leaf, nil
}

// attribute returns the DER of the one value of attribute id.
func (b *safeBag) attribute(id asn1.ObjectIdentifier) ([]byte, bool) {
	for _, a := range b.Attributes {
		if a.ID.Equal(id) {
			var v asn1.RawValue
			if rest, err := asn1.Unmarshal(a.Values.Bytes, &v); err != nil || len(rest) != 0 {
				return nil, false // no value, or several: not one we can use
			}
			return v.FullBytes, true
		}
	}
	return nil, false
}

// setAttribute replaces the attribute id, or adds it.
func (b *safeBag) setAttribute(id asn1.ObjectIdentifier, values asn1.RawValue) {
	for i, a := range b.Attributes {
		if a.ID.Equal(id) {
			b.Attributes[i].Values = values
			return
		}
	}
	b.Attributes = append(b.Attributes, bagAttribute{ID: id, Values: values})
}

// marshal encodes the file again: changed SafeContents re-encoded (and re-encrypted),
// the others as they were, and a new MAC with the same salt and iterations.
func (f *pfxFile) marshal() ([]byte, error) {
	infos := make([]contentInfo, len(f.safes))
	for i, sc := range f.safes {
		infos[i] = sc.info
		if !sc.changed {
			continue
		}
		plain, err := asn1.Marshal(sc.bags)
		if err != nil {
			return nil, err
		}
		var content []byte
		if sc.enc == nil {
			content, err = asn1.Marshal(plain)
		} else {
			enc := *sc.enc
			eci := &enc.EncryptedContentInfo
			if eci.ContentEncryptionAlgorithm, eci.EncryptedContent, err = cbcEncrypt(sc.key, eci.ContentEncryptionAlgorithm, plain); err != nil {
				return nil, err
			}
			content, err = asn1.Marshal(enc)
		}
		if err != nil {
			return nil, err
		}
		infos[i].Content = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: content}
	}
	authSafe, err := asn1.Marshal(infos)
	if err != nil {
		return nil, err
	}
	pdu := f.pdu
	if pdu.MacData.Mac.Digest, err = f.mac(authSafe); err != nil {
		return nil, err
	}
	octets, err := asn1.Marshal(authSafe)
	if err != nil {
		return nil, err
	}
	pdu.AuthSafe.Content = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: octets}
	return asn1.Marshal(pdu)
}

// mac computes the HMAC-SHA-256 of authSafe with the key that RFC 7292 appendix B.2
// derives (ID 3) from the password and the MacData's salt and iterations. The key is
// one hash long, so only the first block is needed: SHA-256^iterations(D || S || P).
func (f *pfxFile) mac(authSafe []byte) ([]byte, error) {
	md := f.pdu.MacData
	if len(md.Mac.Algorithm.Algorithm) == 0 {
		return nil, fmt.Errorf("%w: no MAC", ErrPKCS12Format)
	}
	if !md.Mac.Algorithm.Algorithm.Equal(oidSHA256) {
		return nil, fmt.Errorf("%w: MAC algorithm %v (want HMAC-SHA-256)", ErrPKCS12Format, md.Mac.Algorithm.Algorithm)
	}
	if md.Iterations < 1 || md.Iterations > maxPKCS12Iterations {
		return nil, fmt.Errorf("%w: %d MAC iterations", ErrPKCS12Format, md.Iterations)
	}
	const v = sha256.BlockSize
	in := bytes.Repeat([]byte{3}, v)
	in = append(in, fillBlocks(md.MacSalt, v)...)
	in = append(in, fillBlocks(f.password, v)...)
	key := sha256.Sum256(in)
	for range md.Iterations - 1 {
		key = sha256.Sum256(key[:])
	}
	h := hmac.New(sha256.New, key[:])
	h.Write(authSafe)
	return h.Sum(nil), nil
}

// fillBlocks repeats b to fill whole v-byte blocks (RFC 7292 appendix B.2, steps 2-3).
func fillBlocks(b []byte, v int) []byte {
	if len(b) == 0 {
		return nil
	}
	out := make([]byte, (len(b)+v-1)/v*v)
	for i := range out {
		out[i] = b[i%len(b)]
	}
	return out
}

// pbes2Key derives the AES-256 key of a PBES2 AlgorithmIdentifier (PBKDF2-HMAC-SHA-256
// from the UTF-8 password, as go-pkcs12, OpenSSL and Windows do).
func pbes2Key(alg pkix.AlgorithmIdentifier, password string) ([]byte, error) {
	params, kdf, err := parsePBES2(alg)
	if err != nil {
		return nil, err
	}
	if !kdf.PRF.Algorithm.Equal(oidHMACWithSHA256) || (kdf.KeyLength != 0 && kdf.KeyLength != 32) ||
		!params.Scheme.Algorithm.Equal(oidAES256CBC) {
		return nil, fmt.Errorf("%w: PBES2 other than PBKDF2-HMAC-SHA-256 with AES-256-CBC", ErrPKCS12Format)
	}
	if kdf.Iterations < 1 || kdf.Iterations > maxPKCS12Iterations {
		return nil, fmt.Errorf("%w: %d PBKDF2 iterations", ErrPKCS12Format, kdf.Iterations)
	}
	key, err := pbkdf2.Key(sha256.New, password, kdf.Salt, kdf.Iterations, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: PBKDF2: %v", ErrPKCS12Format, err)
	}
	return key, nil
}

// parsePBES2 parses the parameters of a PBES2 AlgorithmIdentifier.
func parsePBES2(alg pkix.AlgorithmIdentifier) (pbes2Params, pbkdf2Params, error) {
	var params pbes2Params
	var kdf pbkdf2Params
	if !alg.Algorithm.Equal(oidPBES2) {
		return params, kdf, fmt.Errorf("%w: encryption %v (want PBES2)", ErrPKCS12Format, alg.Algorithm)
	}
	if err := unmarshalAll(alg.Parameters.FullBytes, &params); err != nil || !params.KDF.Algorithm.Equal(oidPBKDF2) {
		return params, kdf, fmt.Errorf("%w: PBES2 parameters: %v", ErrPKCS12Format, err)
	}
	if err := unmarshalAll(params.KDF.Parameters.FullBytes, &kdf); err != nil {
		return params, kdf, fmt.Errorf("%w: PBKDF2 parameters: %v", ErrPKCS12Format, err)
	}
	return params, kdf, nil
}

// cbcDecrypt decrypts AES-256-CBC content with the IV in alg and removes its padding.
func cbcDecrypt(key []byte, alg pkix.AlgorithmIdentifier, ciphertext []byte) ([]byte, error) {
	params, _, err := parsePBES2(alg)
	if err != nil {
		return nil, err
	}
	var iv []byte
	if err := unmarshalAll(params.Scheme.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("%w: AES-CBC IV", ErrPKCS12Format)
	}
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes", ErrPKCS12Format, len(ciphertext))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ciphertext)
	// The MAC was checked first, so a padding error here is no oracle.
	pad := int(plain[len(plain)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, fmt.Errorf("%w: bad padding", ErrPKCS12Format)
	}
	return plain[:len(plain)-pad], nil
}

// cbcEncrypt pads and encrypts plain with AES-256-CBC under a fresh random IV (a CBC
// IV is never reused for another plaintext under one key), and returns alg with that
// IV: the PBKDF2 salt and iterations, hence the key, stay as they were.
func cbcEncrypt(key []byte, alg pkix.AlgorithmIdentifier, plain []byte) (pkix.AlgorithmIdentifier, []byte, error) {
	params, _, err := parsePBES2(alg)
	if err != nil {
		return alg, nil, err
	}
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return alg, nil, err
	}
	if params.Scheme.Parameters.FullBytes, err = asn1.Marshal(iv); err != nil {
		return alg, nil, err
	}
	if alg.Parameters.FullBytes, err = asn1.Marshal(params); err != nil {
		return alg, nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return alg, nil, err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	out := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, out)
	return alg, out, nil
}

// unmarshalAll is asn1.Unmarshal that also refuses trailing bytes.
func unmarshalAll(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err == nil && len(rest) != 0 {
		err = errors.New("trailing data")
	}
	return err
}
