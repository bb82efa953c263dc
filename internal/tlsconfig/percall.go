package tlsconfig

import (
	"context"
	"crypto/x509"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// ServerCheck returns per-RPC credentials for a client dialing with ClientCredentials(src):
// before every call they re-check the server's verified chain with src.CheckChain (the
// current anchors, chain material and CRLs, expiry, the X.509-SVID leaf rules), so that a
// reload that revokes the server, or its CA, or removes its root from the bundle refuses
// the next call on a connection already open, with Unauthenticated. Use it with
// grpc.WithPerRPCCredentials. They add no metadata.
func ServerCheck(src *Source) credentials.PerRPCCredentials { return serverCheck{src: src} }

type serverCheck struct{ src *Source }

// errNoServerChain means the call's connection has no verified server chain to check.
var errNoServerChain = errors.New("tlsconfig: no verified server chain on the connection")

func (c serverCheck) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	ri, ok := credentials.RequestInfoFromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, errNoServerChain.Error())
	}
	var chains [][]*x509.Certificate
	switch ai := ri.AuthInfo.(type) {
	case credentials.TLSInfo:
		chains = ai.State.VerifiedChains
	case *credentials.TLSInfo:
		chains = ai.State.VerifiedChains
	}
	if len(chains) == 0 || len(chains[0]) == 0 {
		return nil, status.Error(codes.Unauthenticated, errNoServerChain.Error())
	}
	if err := c.src.CheckChain(chains[0]); err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "server certificate no longer acceptable: %v", err)
	}
	return nil, nil
}

func (serverCheck) RequireTransportSecurity() bool { return true }
