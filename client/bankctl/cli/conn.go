package cli

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/refusal"
	"mtlsbank/internal/tlsconfig"
)

// session is a connection to one service, with what diagnose needs to explain a failure.
type session struct {
	cc   *grpc.ClientConn
	base facts
	last *lastHandshake
	app  *app
}

// identityFiles are the files a command authenticates with.
type identityFiles struct {
	asName   string
	certPath string // "" for no client certificate
	keyPath  string
	caPath   string
	crlPath  string
	crlSet   bool // --crl was given: a broken CRL is an error, not a silent skip
}

func (a *app) identityFiles() identityFiles {
	g := a.g
	f := identityFiles{asName: g.as, certPath: g.cert, keyPath: g.key, caPath: g.ca, crlPath: g.crl, crlSet: g.crl != ""}
	if g.as != "" {
		f.certPath = filepath.Join(g.certsDir, g.as+".crt")
		f.keyPath = filepath.Join(g.certsDir, g.as+".key")
	}
	if f.caPath == "" {
		f.caPath = filepath.Join(g.certsDir, "ca.crt")
	}
	if f.crlPath == "" {
		f.crlPath = filepath.Join(g.certsDir, "crl.pem")
	}
	return f
}

// endpoint returns the address and server name of service.
func (a *app) endpoint(service string) (addr, serverName string, err error) {
	addr = a.g.addr
	if addr == "" {
		addr = a.g.accountsAddr
		if service == servicePayments {
			addr = a.g.paymentsAddr
		}
	}
	host, _, splitErr := net.SplitHostPort(addr)
	if splitErr != nil {
		return "", "", usageFailure(fmt.Errorf("address %q: want HOST:PORT, such as localhost:50051", addr))
	}
	serverName = a.g.serverName
	if serverName == "" {
		serverName = host
	}
	return addr, serverName, nil
}

// parseServerID parses a --server-spiffe-id: a SPIFFE ID of the bank's trust domain, the
// only one bankctl verifies servers in.
func parseServerID(s string) (spiffeid.ID, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("--server-spiffe-id %q: %w", s, err)
	}
	if td := spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain); !id.MemberOf(td) {
		return spiffeid.ID{}, fmt.Errorf("--server-spiffe-id %q: not in the bank's trust domain %s", s, td)
	}
	return id, nil
}

// serverID returns the SPIFFE ID the server of service must present.
func (a *app) serverID(service string) (spiffeid.ID, error) {
	if a.g.serverSPIFFEID != "" {
		id, err := parseServerID(a.g.serverSPIFFEID)
		if err != nil {
			return spiffeid.ID{}, usageFailure(err)
		}
		return id, nil
	}
	if service == servicePayments {
		return spiffeid.RequireFromString(paymentsServerID), nil
	}
	return spiffeid.RequireFromString(accountsServerID), nil
}

// dial checks our certificate, then connects to service. A certificate that cannot work
// is reported here, without a round trip.
func (a *app) dial(service string) (*session, error) {
	addr, serverName, err := a.endpoint(service)
	if err != nil {
		return nil, err
	}
	serverID, err := a.serverID(service)
	if err != nil {
		return nil, err
	}
	files := a.identityFiles()
	base := facts{
		service:    service,
		addr:       addr,
		serverName: serverName,
		serverID:   serverID,
		asName:     files.asName,
		certPath:   files.certPath,
		caPath:     files.caPath,
		onBehalfOf: a.g.onBehalfOf,
		timeout:    a.g.timeout,
		now:        a.now(),
	}

	bundle, err := tlsconfig.LoadBundle(files.caPath)
	if err != nil {
		return nil, usageFailure(caBundleError(files, a.g.ca != "", err))
	}
	var cert *tls.Certificate
	if files.certPath != "" {
		c, err := loadClientCertificate(files)
		if err != nil {
			return nil, err
		}
		base.leaf = c.Leaf
		if d := checkOwnCertificate(base, c.PrivateKey.(crypto.Signer), a.g.skipCheck); d != nil {
			return nil, &failure{diag: *d}
		}
		cert = c
	}
	crl, err := loadHintCRL(files, bundle, cert)
	if err != nil {
		return nil, err
	}
	if crl != nil {
		base.crl, base.crlPath = crl, files.crlPath
	}

	creds, err := clientCredentials(bundle, cert, serverName, serverID)
	if err != nil {
		return nil, localFailure(err)
	}
	tr, err := a.startTracing()
	if err != nil {
		return nil, err
	}
	last := &lastHandshake{}
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(&recordingCreds{TransportCredentials: creds, last: last}),
		grpc.WithUserAgent("bankctl"),
		tr.DialOption(),
	)
	if err != nil {
		return nil, usageFailure(fmt.Errorf("address %q: %w", addr, err))
	}
	return &session{cc: cc, base: base, last: last, app: a}, nil
}

// loadClientCertificate reads the certificate chain and key. Unreadable or malformed
// files are usage errors: the command line names the wrong file.
func loadClientCertificate(files identityFiles) (*tls.Certificate, error) {
	hint := "check --cert/--key"
	if files.asName != "" {
		hint = "check --as and --certs-dir"
	}
	certPEM, err := os.ReadFile(files.certPath)
	if err != nil {
		return nil, usageFailure(missingIdentity(files, "client certificate", files.certPath, hint, err))
	}
	chain, err := pki.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, usageFailure(fmt.Errorf("%s is not a PEM certificate chain: %w; %s", absPath(files.certPath), err, hint))
	}
	keyPEM, err := os.ReadFile(files.keyPath)
	if err != nil {
		return nil, usageFailure(missingIdentity(files, "private key", files.keyPath, hint, err))
	}
	key, err := pki.ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, usageFailure(fmt.Errorf("%s is not a PEM private key: %w; %s", absPath(files.keyPath), err, hint))
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, nil
}

// absPath returns path made absolute, so that a message says where bankctl looked
// whatever the directory it was run from.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// devPKIMissing reports whether dir holds no dev PKI (no ca.crt): only then is
// 'make certs' the advice.
func devPKIMissing(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "ca.crt"))
	return errors.Is(err, fs.ErrNotExist)
}

// makeCertsHint is the advice for a dev PKI that does not exist where bankctl looked.
func makeCertsHint(dir string) string {
	return fmt.Sprintf("no dev PKI in %s: run 'make certs' in the repository root, or point --certs-dir at the directory it wrote", absPath(dir))
}

// caBundleError explains a CA bundle that could not be loaded; given says --ca named it.
func caBundleError(files identityFiles, given bool, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist) && given:
		return fmt.Errorf("--ca %s: no such file (looked for %s)", files.caPath, absPath(files.caPath))
	case errors.Is(err, fs.ErrNotExist) && devPKIMissing(filepath.Dir(files.caPath)):
		return fmt.Errorf("%s; or pass --ca FILE", makeCertsHint(filepath.Dir(files.caPath)))
	}
	return fmt.Errorf("cannot use the CA bundle %s: %w; pass --ca FILE with the bank's CA certificates (PEM)", absPath(files.caPath), err)
}

// missingIdentity explains a certificate or key file that could not be read.
func missingIdentity(files identityFiles, what, path, hint string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot read the %s %s: %w; %s", what, absPath(path), err, hint)
	}
	dir := filepath.Dir(path)
	if files.asName == "" {
		return fmt.Errorf("cannot read the %s: %s does not exist; %s", what, absPath(path), hint)
	}
	if devPKIMissing(dir) {
		return fmt.Errorf("--as %s: %s", files.asName, makeCertsHint(dir))
	}
	names := identityNames(dir)
	known := ""
	if len(names) > 0 {
		known = fmt.Sprintf(" (it holds: %s)", strings.Join(names, ", "))
	}
	return fmt.Errorf("--as %s: no %s %s in %s%s; use one of those, or issue it with bin/certgen issue %s --spiffe-id ID",
		files.asName, what, filepath.Base(path), absPath(dir), known, files.asName)
}

// identityNames lists the NAME of every NAME.crt with its NAME.key in dir, sorted.
func identityNames(dir string) []string {
	crts, _ := filepath.Glob(filepath.Join(dir, "*.crt"))
	var names []string
	for _, c := range crts {
		name := strings.TrimSuffix(filepath.Base(c), ".crt")
		if _, err := os.Stat(filepath.Join(dir, name+".key")); err == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// checkOwnCertificate catches, before dialing, a certificate no bank server can accept.
// With skip it checks only the key pair, without which no handshake can even be tried.
func checkOwnCertificate(f facts, key crypto.Signer, skip bool) *diagnosis {
	leaf := f.leaf
	local := func(k Kind, line, msg string) *diagnosis {
		return &diagnosis{kind: k, line: line, code: codes.Unauthenticated, message: msg, local: true}
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return local(KindKeyMismatch,
			fmt.Sprintf("the private key does not belong to %s; pass the key that was issued with it", certName(f)),
			"private key does not match certificate")
	}
	switch {
	case skip:
		return nil
	case f.now.After(leaf.NotAfter):
		return local(KindClientExpired, expiredLine(f), "certificate expired")
	case f.now.Before(leaf.NotBefore):
		return local(KindClientNotYetValid, notYetValidLine(f), "certificate not yet valid")
	case !clientAuthAllowed(leaf):
		return local(KindClientUsage, usageLine(f), "certificate lacks the clientAuth extended key usage")
	}
	return nil
}

// loadHintCRL loads the CRL bankctl uses only to explain a rejection. A default CRL that
// is missing or does not verify is ignored; one given with --crl must load.
func loadHintCRL(files identityFiles, bundle []*x509.Certificate, cert *tls.Certificate) (*tlsconfig.CRL, error) {
	data, err := os.ReadFile(files.crlPath)
	if err != nil {
		if files.crlSet {
			return nil, usageFailure(fmt.Errorf("cannot read --crl: %w", err))
		}
		return nil, nil
	}
	// The CRL is signed by the intermediate, which a bundle may leave to the chains.
	issuers := append([]*x509.Certificate(nil), bundle...)
	if cert != nil {
		for _, der := range cert.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil && c.IsCA {
				issuers = append(issuers, c)
			}
		}
	}
	crl, err := tlsconfig.ParseCRL(data, issuers)
	if err != nil {
		if files.crlSet {
			return nil, usageFailure(fmt.Errorf("--crl %s: %w", files.crlPath, err))
		}
		return nil, nil
	}
	return crl, nil
}

// clientCredentials returns the transport credentials of bankctl: RootCAs = the bundle,
// the server name checked, the server's SPIFFE ID required to be serverID, and our
// certificate always sent (tlsconfig's client does that through GetClientCertificate).
func clientCredentials(bundle []*x509.Certificate, cert *tls.Certificate, serverName string, serverID spiffeid.ID) (credentials.TransportCredentials, error) {
	td := spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)
	if cert != nil {
		src, err := tlsconfig.NewSource(td, *cert, bundle)
		if err != nil {
			return nil, fmt.Errorf("TLS client: %w", err)
		}
		return tlsconfig.ClientCredentials(src, serverName, tlsconfig.WithServerID(serverID)), nil
	}
	// tlsconfig.Source requires a certificate; calling without one is exactly what a user
	// who forgot --as does, and the server's answer to it is what they need to see. The
	// server is still checked first: its certificate arrives before it asks for ours.
	return credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pki.NewCertPool(bundle...),
		ServerName: serverName,
		NextProtos: []string{"h2"},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &tls.Certificate{}, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
				return tlsconfig.ErrNoVerifiedChain
			}
			id, err := identity.FromCertificate(cs.VerifiedChains[0][0], td)
			if err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			if id.ID != serverID {
				return fmt.Errorf("%w: got %s, want %s", tlsconfig.ErrUnexpectedServer, id.ID, serverID)
			}
			return nil
		},
	}), nil
}

// lastHandshake keeps the error of the last failed client handshake with its types;
// gRPC passes it on to the caller as text only.
type lastHandshake struct {
	mu  sync.Mutex
	err error
}

func (l *lastHandshake) set(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

func (l *lastHandshake) get() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// recordingCreds records the outcome of each client handshake in last.
type recordingCreds struct {
	credentials.TransportCredentials
	last *lastHandshake
}

func (r *recordingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := r.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err == nil {
		conn, err = awaitVerdict(ctx, conn)
	}
	r.last.set(err)
	if err != nil {
		return nil, nil, err
	}
	return conn, info, nil
}

// verdictWait bounds how long awaitVerdict waits for the server's first bytes.
const verdictWait = 2 * time.Second

// awaitVerdict reads the server's first record before gRPC writes anything. With TLS 1.3
// the server judges our certificate after our side of the handshake has completed, and
// its verdict is the first thing it sends: an alert, or (accepted) its HTTP/2 settings,
// which a gRPC server writes without waiting for the client. Reading it here makes a
// rejection a handshake error with the alert in it; otherwise gRPC's first write races
// the alert and can fail with "broken pipe", losing the reason. A server that stays
// silent is given the connection as it is after verdictWait.
func awaitVerdict(ctx context.Context, conn net.Conn) (net.Conn, error) {
	deadline := time.Now().Add(verdictWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		return conn, nil
	}
	buf := make([]byte, 16<<10)
	n, err := conn.Read(buf)
	if resetErr := conn.SetReadDeadline(time.Time{}); resetErr != nil && err == nil {
		err = resetErr
	}
	var netErr net.Error
	switch {
	case err == nil:
		return &replayConn{Conn: conn, pending: buf[:n]}, nil
	case errors.As(err, &netErr) && netErr.Timeout():
		return &replayConn{Conn: conn, pending: buf[:n]}, nil
	}
	conn.Close()
	return nil, err
}

// replayConn returns the bytes awaitVerdict read before reading on.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (r *recordingCreds) Clone() credentials.TransportCredentials {
	return &recordingCreds{TransportCredentials: r.TransportCredentials.Clone(), last: r.last}
}

// callContext returns the context of one call: --timeout and the delegation metadata.
func (s *session) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.app.g.timeout)
	return s.withMetadata(ctx), cancel
}

func (s *session) withMetadata(ctx context.Context) context.Context {
	if s.app.g.onBehalfOf != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, s.app.g.onBehalfOf)
	}
	return ctx
}

// fail diagnoses the error of a call to method. After a PermissionDenied it asks the
// server who it thinks we are, so that the line can say it.
func (s *session) fail(ctx context.Context, method string, err error) error {
	f := s.base
	f.method = method
	f.now = s.app.now()
	f.handshake = s.last.get()
	f.flagFor = s.app.flagFor
	if code := status.Code(err); f.handshake == nil && (code == codes.Unavailable || code == codes.DeadlineExceeded) {
		f.resolveErr = lookupHost(ctx, f.addr)
	}
	_, reasoned := refusal.Info(err) // a refusal with a reason is not a policy's denial
	if status.Code(err) == codes.PermissionDenied && !reasoned && method != identityv1.IdentityService_WhoAmI_FullMethodName {
		// Ask as ourselves: without the delegation metadata the failed call may have carried.
		wctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.WithoutCancel(ctx), metadata.MD{}), s.app.g.timeout)
		f.seen, f.seenErr = identityv1.NewIdentityServiceClient(s.cc).WhoAmI(wctx, &identityv1.WhoAmIRequest{})
		cancel()
	}
	return &failure{diag: diagnose(err, f)}
}

// resolveWait bounds the lookup that tells an unknown host from a server that is down.
const resolveWait = 3 * time.Second

// lookupHost resolves the host of addr, unless it is an IP address, and returns the
// error: nil when the host resolves. gRPC says only "produced zero addresses".
func lookupHost(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveWait)
	defer cancel()
	_, err = net.DefaultResolver.LookupHost(ctx, host)
	return err
}

// Close closes the connection.
func (s *session) Close() { _ = s.cc.Close() }
