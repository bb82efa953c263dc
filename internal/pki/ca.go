package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/url"
)

// ErrNotCA is returned when a certificate that must sign others is not a CA.
var ErrNotCA = errors.New("certificate is not a CA")

// CA is a certificate authority: a CA certificate and the key that signs with it.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain is this CA's certificate followed by its issuers up to, excluding, the root.
	// A root's Chain is [Cert].
	Chain []*x509.Certificate
}

// NewRootCA makes a self-signed root CA: CA:true with MaxPathLen 1 (one intermediate
// below it), KeyUsage CertSign|CRLSign, valid for DefaultCATTL unless told otherwise.
func NewRootCA(commonName string, opts ...Option) (*CA, error) {
	o := newOptions(DefaultCATTL, opts)
	tmpl := caTemplate(commonName, 1)
	cert, key, err := create(tmpl, nil, nil, o)
	if err != nil {
		return nil, fmt.Errorf("root CA %q: %w", commonName, err)
	}
	return &CA{Cert: cert, Key: key, Chain: []*x509.Certificate{cert}}, nil
}

// NewIntermediate makes a CA signed by ca: CA:true with MaxPathLen 0 (it signs only
// leaves), KeyUsage CertSign|CRLSign, valid for DefaultCATTL unless told otherwise.
func (ca *CA) NewIntermediate(commonName string, opts ...Option) (*CA, error) {
	o := newOptions(DefaultCATTL, opts)
	tmpl := caTemplate(commonName, 0)
	cert, key, err := create(tmpl, ca.Cert, ca.Key, o)
	if err != nil {
		return nil, fmt.Errorf("intermediate CA %q: %w", commonName, err)
	}
	chain := append([]*x509.Certificate{cert}, intermediates(ca.Chain)...)
	return &CA{Cert: cert, Key: key, Chain: chain}, nil
}

// LoadCA assembles a CA from its certificate, key and the certificates of its issuers
// (self-signed roots among them are dropped from Chain), checking that key and
// certificate belong together and that the certificate is a CA.
func LoadCA(cert *x509.Certificate, key crypto.Signer, issuers ...*x509.Certificate) (*CA, error) {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("load CA %q: %w", cert.Subject.CommonName, ErrNotCA)
	}
	if err := KeyMatches(cert, key); err != nil {
		return nil, fmt.Errorf("load CA %q: %w", cert.Subject.CommonName, err)
	}
	chain := []*x509.Certificate{cert}
	if !IsSelfIssued(cert) {
		chain = append(chain, intermediates(issuers)...)
	}
	return &CA{Cert: cert, Key: key, Chain: chain}, nil
}

func caTemplate(commonName string, maxPathLen int) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// Usage is the set of Extended Key Usages a leaf carries.
type Usage int

// Usage bits.
const (
	ServerAuth Usage = 1 << iota
	ClientAuth
)

func (u Usage) extKeyUsages() []x509.ExtKeyUsage {
	var ekus []x509.ExtKeyUsage
	if u&ServerAuth != 0 {
		ekus = append(ekus, x509.ExtKeyUsageServerAuth)
	}
	if u&ClientAuth != 0 {
		ekus = append(ekus, x509.ExtKeyUsageClientAuth)
	}
	return ekus
}

// Request describes a leaf certificate.
type Request struct {
	CommonName string
	Org        []string // Subject O
	OrgUnit    []string // Subject OU
	// SPIFFEIDs become URI SANs. They are parsed with url.Parse only, and more than one
	// is allowed, so that tests can make bad certificates.
	SPIFFEIDs []string
	DNSNames  []string
	IPs       []net.IP
	Usage     Usage // EKU: ServerAuth, ClientAuth or both; 0 = no EKU at all (a test fixture)
	// IsCA issues a CA certificate (CA:true, KeyUsage CertSign|CRLSign and no
	// DigitalSignature, like a real CA) as if it were a leaf: the `cacert` bad fixture.
	IsCA bool
}

// Leaf is an end-entity certificate with its key.
type Leaf struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate // leaf first, then intermediates (never the root)
}

// Issue signs a leaf for req: KeyUsage DigitalSignature (+KeyEncipherment for RSA),
// EKU per req.Usage, a random 128-bit serial, valid for DefaultLeafTTL unless told
// otherwise.
func (ca *CA) Issue(req Request, opts ...Option) (*Leaf, error) {
	o := newOptions(DefaultLeafTTL, opts)
	tmpl, err := leafTemplate(req, o.keyType)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", req.CommonName, err)
	}
	cert, key, err := create(tmpl, ca.Cert, ca.Key, o)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", req.CommonName, err)
	}
	chain := append([]*x509.Certificate{cert}, intermediates(ca.Chain)...)
	return &Leaf{Cert: cert, Key: key, Chain: chain}, nil
}

// SelfSigned makes a leaf for req that is signed by its own key (a bad fixture).
func SelfSigned(req Request, opts ...Option) (*Leaf, error) {
	o := newOptions(DefaultLeafTTL, opts)
	tmpl, err := leafTemplate(req, o.keyType)
	if err != nil {
		return nil, fmt.Errorf("self-signed %q: %w", req.CommonName, err)
	}
	cert, key, err := create(tmpl, nil, nil, o)
	if err != nil {
		return nil, fmt.Errorf("self-signed %q: %w", req.CommonName, err)
	}
	return &Leaf{Cert: cert, Key: key, Chain: []*x509.Certificate{cert}}, nil
}

func leafTemplate(req Request, kt KeyType) (*x509.Certificate, error) {
	uris := make([]*url.URL, 0, len(req.SPIFFEIDs))
	for _, id := range req.SPIFFEIDs {
		u, err := url.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("URI SAN %q: %w", id, err)
		}
		uris = append(uris, u)
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         req.CommonName,
			Organization:       req.Org,
			OrganizationalUnit: req.OrgUnit,
		},
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPs,
		URIs:                  uris,
		BasicConstraintsValid: true,
		ExtKeyUsage:           req.Usage.extKeyUsages(),
	}
	switch {
	case req.IsCA:
		tmpl.IsCA = true
		tmpl.MaxPathLenZero = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	case isRSA(kt):
		// RSA key exchange (TLS 1.2 and older) encrypts with the certificate key.
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	default:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	return tmpl, nil
}

// TLSCertificate returns the leaf as a tls.Certificate that sends the whole chain.
func (l *Leaf) TLSCertificate() tls.Certificate {
	der := make([][]byte, 0, len(l.Chain))
	for _, c := range l.Chain {
		der = append(der, c.Raw)
	}
	return tls.Certificate{Certificate: der, PrivateKey: l.Key, Leaf: l.Cert}
}

// create generates a key, fills serial, validity and key identifier into tmpl, and signs
// it with parentKey, or self-signs when parent is nil.
func create(tmpl, parent *x509.Certificate, parentKey crypto.Signer, o options) (*x509.Certificate, crypto.Signer, error) {
	if parent != nil && (!parent.BasicConstraintsValid || !parent.IsCA) {
		return nil, nil, fmt.Errorf("issuer %q: %w", parent.Subject.CommonName, ErrNotCA)
	}
	var err error
	if tmpl.NotBefore, tmpl.NotAfter, err = o.validity(); err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = o.serialNumber(); err != nil {
		return nil, nil, err
	}
	if o.keyUsage != nil {
		tmpl.KeyUsage = *o.keyUsage
	}
	key, err := GenerateKey(o.keyType)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", o.keyType, err)
	}
	if tmpl.SubjectKeyId, err = subjectKeyID(key.Public()); err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new certificate: %w", err)
	}
	return cert, key, nil
}

// subjectKeyID is RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of the
// subjectPublicKey bit string.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	var spki struct {
		Algorithm        pkix.AlgorithmIdentifier
		SubjectPublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha256.Sum256(spki.SubjectPublicKey.Bytes)
	return sum[:20], nil
}

// intermediates returns certs without the self-issued ones (roots), which are never sent.
func intermediates(certs []*x509.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(certs))
	for _, c := range certs {
		if !IsSelfIssued(c) {
			out = append(out, c)
		}
	}
	return out
}

// IsSelfIssued reports whether cert names itself as its issuer (a root or a self-signed leaf).
func IsSelfIssued(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, cert.RawSubject)
}

// SignedBy reports whether cert names issuer as its issuer and carries issuer's
// signature. Unlike (*x509.Certificate).CheckSignatureFrom it does not require issuer
// to be a CA, so it also recognises a self-signed leaf (SignedBy(c, c)).
func SignedBy(cert, issuer *x509.Certificate) error {
	if !bytes.Equal(cert.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("certificate issuer %q is not %q", cert.Issuer, issuer.Subject)
	}
	if err := issuer.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return fmt.Errorf("certificate not signed by %q: %w", issuer.Subject, err)
	}
	return nil
}

// isRSA reports whether the key type is RSA, whose leaves also need KeyEncipherment.
func isRSA(kt KeyType) bool { return kt == RSA1024 || kt == RSA2048 || kt == RSA3072 }
