package workloadapitest

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/pki"
)

// Server is a Workload API serving one identity, or none (as an agent does for a workload
// no registration entry matches).
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	addr string

	mu      sync.Mutex
	resp    *workload.X509SVIDResponse // nil: no identity
	changed chan struct{}              // closed and replaced on every change
	streams int                        // FetchX509SVID streams opened so far
}

// New serves the Workload API on a unix socket in a temporary directory until the test
// ends. It starts with no identity: Set gives one.
func New(tb testing.TB) *Server {
	tb.Helper()
	// A short directory: a unix socket path is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "wlapi")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{addr: "unix://" + path, changed: make(chan struct{})}
	srv := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(srv, s)
	go srv.Serve(lis)
	tb.Cleanup(srv.Stop)
	return s
}

// Addr returns the endpoint address, unix:///....
func (s *Server) Addr() string { return s.addr }

// Set makes leaf (with its chain) the workload's X.509-SVID and bundle its trust bundle,
// sent at once on every open stream.
func (s *Server) Set(leaf *pki.Leaf, bundle []*x509.Certificate) {
	var svid, roots []byte
	for _, c := range leaf.Chain {
		svid = append(svid, c.Raw...)
	}
	for _, c := range bundle {
		roots = append(roots, c.Raw...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		panic(err) // a key pki issued always marshals
	}
	s.update(&workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId: leaf.Cert.URIs[0].String(), X509Svid: svid, X509SvidKey: key, Bundle: roots,
	}}})
}

// Deny takes the identity away, as deleting the registration entry does: open streams
// end with PermissionDenied and new ones get it at once.
func (s *Server) Deny() { s.update(nil) }

// Streams returns how many streams were opened so far (one per attempt of a client).
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

func (s *Server) update(resp *workload.X509SVIDResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resp = resp
	close(s.changed)
	s.changed = make(chan struct{})
}

// FetchX509SVID streams the identity and every change of it, as an agent does.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	s.mu.Lock()
	s.streams++
	s.mu.Unlock()
	for {
		s.mu.Lock()
		resp, changed := s.resp, s.changed
		s.mu.Unlock()
		if resp == nil {
			return status.Error(codes.PermissionDenied, "no identity issued")
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}
