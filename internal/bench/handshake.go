package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mtlsbank/internal/pki"
)

// handshakeTimeout bounds one handshake of the handshake benchmark.
const handshakeTimeout = 10 * time.Second

// handshakePair is what the handshake benchmark compares for one key type: a server
// certificate and client certificate of that type, and two server configurations.
type handshakePair struct {
	keyType pki.KeyType
	// raw is plain crypto/tls: the certificate, RequireAndVerifyClientCert against the
	// bank bundle, nothing else.
	raw *tls.Config
	// ours is tlsconfig.ServerConfig: TLS 1.3 only, a config per handshake through
	// GetConfigForClient, VerifyConnection with the identity rules and the CRL.
	ours   *tls.Config
	client *tls.Config
}

func newHandshakePair(m *material, ours func(*material, *pki.Leaf) (*tls.Config, error)) (*handshakePair, error) {
	srvLeaf, err := m.server(accountsID)
	if err != nil {
		return nil, err
	}
	cliLeaf, err := m.client(aliceID)
	if err != nil {
		return nil, err
	}
	pool := pki.NewCertPool(m.bundle...)
	oursCfg, err := ours(m, srvLeaf)
	if err != nil {
		return nil, err
	}
	return &handshakePair{
		keyType: m.keyType,
		raw: &tls.Config{
			Certificates: []tls.Certificate{srvLeaf.TLSCertificate()},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
		},
		ours: oursCfg,
		// The same client for both: TLS 1.3 (what both servers negotiate), no session
		// cache, so every handshake is a full one with both certificates verified.
		client: &tls.Config{
			MinVersion:         tls.VersionTLS13,
			RootCAs:            pool,
			ServerName:         "localhost",
			Certificates:       []tls.Certificate{cliLeaf.TLSCertificate()},
			ClientSessionCache: nil,
		},
	}, nil
}

// runHandshakes makes full handshakes against server with concurrency clients for d and
// returns them as a sample (a "call" is one handshake: connect, handshake, one byte
// from the server once it has verified the client, close).
func runHandshakes(ctx context.Context, server, client *tls.Config, concurrency int, d time.Duration) (sample, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return sample{}, err
	}
	var (
		serverWG  sync.WaitGroup
		serverErr atomic.Pointer[error]
	)
	serverWG.Go(func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return // the listener closed at the end of the round
			}
			serverWG.Go(func() {
				if err := serveHandshake(conn, server); err != nil {
					serverErr.CompareAndSwap(nil, &err)
				}
			})
		}
	})
	addr := lis.Addr().String()
	s, err := runLoad(ctx, concurrency, d, func(ctx context.Context, _, _ int) error {
		return clientHandshake(ctx, addr, client)
	})
	lis.Close()
	serverWG.Wait()
	if e := serverErr.Load(); e != nil {
		return s, fmt.Errorf("server handshake: %w", *e)
	}
	return s, err
}

// serveHandshake completes the server side and writes one byte, so that the client
// knows the server accepted its certificate (in TLS 1.3 the server checks it after the
// client's handshake has returned).
func serveHandshake(conn net.Conn, cfg *tls.Config) error {
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return err
	}
	tc := tls.Server(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	_, err := tc.Write([]byte{1})
	return err
}

func clientHandshake(ctx context.Context, addr string, cfg *tls.Config) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	// Reset instead of FIN on close: tens of thousands of connections would otherwise
	// leave as many sockets in TIME_WAIT and exhaust the loopback ports.
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return err
		}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	var b [1]byte
	if _, err := tc.Read(b[:]); err != nil {
		return fmt.Errorf("server did not accept the handshake: %w", err)
	}
	if b[0] != 1 {
		return errors.New("server sent an unexpected byte")
	}
	return nil
}
