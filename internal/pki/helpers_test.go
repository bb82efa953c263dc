package pki_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"mtlsbank/internal/pki"
)

// testCA is a root -> intermediate pair shared by the cases of one test.
type testCA struct {
	root, inter *pki.CA
}

func newTestCA(tb testing.TB, opts ...pki.Option) testCA {
	tb.Helper()
	root, err := pki.NewRootCA("test root", opts...)
	if err != nil {
		tb.Fatalf("NewRootCA: %v", err)
	}
	inter, err := root.NewIntermediate("test intermediate", opts...)
	if err != nil {
		tb.Fatalf("NewIntermediate: %v", err)
	}
	return testCA{root: root, inter: inter}
}

func (c testCA) issue(tb testing.TB, req pki.Request, opts ...pki.Option) *pki.Leaf {
	tb.Helper()
	leaf, err := c.inter.Issue(req, opts...)
	if err != nil {
		tb.Fatalf("Issue(%+v): %v", req, err)
	}
	return leaf
}

// verify checks leaf's chain against the root for the given usage at time at (zero = now).
func (c testCA) verify(leaf *pki.Leaf, usage x509.ExtKeyUsage, at time.Time) error {
	_, err := leaf.Cert.Verify(x509.VerifyOptions{
		Roots:         pki.NewCertPool(c.root.Cert),
		Intermediates: pki.NewCertPool(leaf.Chain[1:]...),
		KeyUsages:     []x509.ExtKeyUsage{usage},
		CurrentTime:   at,
	})
	return err
}

// handshake runs a real mutual TLS 1.3 handshake over an in-memory pipe and returns the
// server's view of the connection.
func handshake(tb testing.TB, roots *x509.CertPool, server, client tls.Certificate) (tls.ConnectionState, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	srv := tls.Server(sc, &tls.Config{
		Certificates: []tls.Certificate{server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
		MinVersion:   tls.VersionTLS13,
	})
	cli := tls.Client(cc, &tls.Config{
		Certificates: []tls.Certificate{client},
		RootCAs:      roots,
		ServerName:   "localhost",
		MinVersion:   tls.VersionTLS13,
	})
	serverErr := make(chan error, 1)
	go func() {
		err := srv.HandshakeContext(ctx)
		if err == nil {
			// In TLS 1.3 the server verifies the client certificate after the client
			// thinks it is done; a read surfaces that verdict to the client.
			_, err = srv.Write([]byte{1})
		}
		serverErr <- err
	}()
	clientErr := cli.HandshakeContext(ctx)
	if clientErr == nil {
		_, clientErr = cli.Read(make([]byte, 1))
	}
	if clientErr != nil {
		cc.Close()
	}
	if err := errors.Join(clientErr, <-serverErr); err != nil {
		return tls.ConnectionState{}, err
	}
	return srv.ConnectionState(), nil
}
