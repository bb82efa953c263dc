package reload

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"google.golang.org/grpc"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/tlsconfig"
)

// Sentinel errors of the reload functions.
var (
	// ErrTruncated means a PEM file ends inside a block: it is being written, or was cut.
	ErrTruncated = errors.New("incomplete PEM block (truncated or still being written)")
	// ErrIdentityChanged means a new certificate names another SPIFFE ID than the one
	// served: a reload rotates a certificate, it does not change who the service is.
	ErrIdentityChanged = errors.New("certificate SPIFFE ID differs from the one in use")
	// ErrTrustDomainChanged means a new policy is for another trust domain.
	ErrTrustDomainChanged = errors.New("policy trust domain differs from the one in use")
	// ErrFileCount means a reload function was added with the wrong number of files.
	ErrFileCount = errors.New("wrong number of files for this reload function")
)

// Certificate returns the Func of the group (certificate chain, private key) that src
// presents. The new pair is taken only if both files are complete PEM, the key matches
// the leaf, the chain verifies against src's current CA bundle now (which also rejects a
// chain cut after its leaf, and an expired or not yet valid certificate), and the leaf
// carries the same SPIFFE ID as the certificate in use.
func Certificate(src *tlsconfig.Source) Func {
	return func(files []File) error {
		if len(files) != 2 {
			return fmt.Errorf("certificate: %w: got %d, want 2 (certificate, key)", ErrFileCount, len(files))
		}
		certFile, keyFile := files[0], files[1]
		if err := checkComplete(certFile); err != nil {
			return err
		}
		if err := checkComplete(keyFile); err != nil {
			return err
		}
		chain, err := pki.ParseCertsPEM(certFile.Data)
		if err != nil {
			return fmt.Errorf("%s: %w", certFile.Path, err)
		}
		pair, err := tls.X509KeyPair(certFile.Data, keyFile.Data)
		if err != nil {
			return fmt.Errorf("key %s for certificate %s: %w", keyFile.Path, certFile.Path, err)
		}
		pair.Leaf = chain[0]
		if err := verifyChain(chain, src.Bundle(), src.Intermediates()); err != nil {
			return fmt.Errorf("%s: %w", certFile.Path, err)
		}
		newID, err := identity.FromCertificate(chain[0], src.TrustDomain())
		if err != nil {
			return fmt.Errorf("%s: %w", certFile.Path, err)
		}
		if cur := src.Certificate(); cur != nil && cur.Leaf != nil {
			if curID, err := identity.FromCertificate(cur.Leaf, src.TrustDomain()); err == nil && curID.ID != newID.ID {
				return fmt.Errorf("%s: %w: %s, in use %s", certFile.Path, ErrIdentityChanged, newID.ID, curID.ID)
			}
		}
		if err := src.SetCertificate(pair); err != nil {
			return fmt.Errorf("%s, %s: %w", certFile.Path, keyFile.Path, err)
		}
		return nil
	}
}

// Bundle returns the Func of the group (CA bundle) that src trusts: complete PEM, every
// block a CA certificate, at least one self-signed root (the trust anchors), and every
// other CA chaining to one of them (tlsconfig.Source.SetBundle).
func Bundle(src *tlsconfig.Source) Func {
	return func(files []File) error {
		if len(files) != 1 {
			return fmt.Errorf("bundle: %w: got %d, want 1", ErrFileCount, len(files))
		}
		f := files[0]
		if err := checkComplete(f); err != nil {
			return err
		}
		certs, err := pki.ParseCertsPEM(f.Data)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if err := src.SetBundle(certs); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		return nil
	}
}

// Intermediates returns the Func of the group (intermediate CA certificates, chain
// material) that src uses: complete PEM, every block a CA that is not a root and chains
// to one of src's anchors (tlsconfig.Source.SetIntermediates). An empty file means none.
func Intermediates(src *tlsconfig.Source) Func {
	return func(files []File) error {
		if len(files) != 1 {
			return fmt.Errorf("intermediates: %w: got %d, want 1", ErrFileCount, len(files))
		}
		f := files[0]
		if err := checkComplete(f); err != nil {
			return err
		}
		certs, err := tlsconfig.ParseIntermediates(f.Data)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if err := src.SetIntermediates(certs); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		return nil
	}
}

// CRL returns the Func of the group (CRL bundle, PEM or DER) that src enforces: it must
// be complete, every CRL signed by one of src's CRL issuers (tlsconfig.Source.CRLIssuers)
// and none of them older than the one in force for its issuer (tlsconfig.Source.SetCRL).
// onReject, when not nil, is called with every error, for bank_crl_rejected_total.
func CRL(src *tlsconfig.Source, onReject func(error)) Func {
	return func(files []File) error {
		if len(files) != 1 {
			return fmt.Errorf("crl: %w: got %d, want 1", ErrFileCount, len(files))
		}
		err := loadCRL(src, files[0])
		if err != nil && onReject != nil {
			onReject(err)
		}
		return err
	}
}

func loadCRL(src *tlsconfig.Source, f File) error {
	if err := checkComplete(f); err != nil {
		return err
	}
	crl, err := tlsconfig.ParseCRL(f.Data, src.CRLIssuers())
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := src.SetCRL(crl); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return nil
}

// Policy returns the Func of the group (policy file) that az enforces. The new policy
// must parse, be for the trust domain in use, and, when services is not nil, grant every
// method services returns (a grpc.Server's GetServiceInfo): a reload never leaves a
// served method without a rule, which the service would have refused at start-up.
func Policy(az *authz.Authorizer, services func() map[string]grpc.ServiceInfo) Func {
	return func(files []File) error {
		if len(files) != 1 {
			return fmt.Errorf("policy: %w: got %d, want 1", ErrFileCount, len(files))
		}
		f := files[0]
		p, err := authz.ParsePolicy(f.Path, f.Data)
		if err != nil {
			return err // LineErrors already name the file
		}
		if cur := az.Policy(); cur != nil && cur.TrustDomain() != p.TrustDomain() {
			return fmt.Errorf("%s: %w: %s, in use %s", f.Path, ErrTrustDomainChanged, p.TrustDomain(), cur.TrustDomain())
		}
		if services != nil {
			if err := p.Check(services()); err != nil {
				return err
			}
		}
		az.SetPolicy(p)
		return nil
	}
}

// checkComplete rejects PEM data that ends inside a block. Parsers stop quietly at the
// first undecodable block, so a file cut in its second block would otherwise pass as a
// shorter, valid one.
func checkComplete(f File) error {
	if !bytes.Contains(f.Data, []byte("-----BEGIN")) {
		return nil // not PEM (a DER CRL): its parser sees any truncation
	}
	rest := f.Data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
	}
	// What is left is text the decoder skipped. A "-----BEGIN" in it is a block without
	// its end; a last line starting with "-" is a marker cut short.
	tail := bytes.TrimSpace(rest)
	if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) || (len(tail) > 0 && tail[0] == '-') {
		return fmt.Errorf("%s: %w", f.Path, ErrTruncated)
	}
	return nil
}

// verifyChain checks that chain (leaf first) verifies against roots now, through its own
// intermediates and the configured ones, for any usage: peers check the usage; this
// catches a wrong file or a missing intermediate.
func verifyChain(chain, roots, inters []*x509.Certificate) error {
	opts := x509.VerifyOptions{
		Roots:         pki.NewCertPool(roots...),
		Intermediates: pki.NewCertPool(append(append([]*x509.Certificate(nil), chain[1:]...), inters...)...),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return fmt.Errorf("verify against the CA bundle in use: %w", err)
	}
	return nil
}
