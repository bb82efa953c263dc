package identity

import (
	"context"
	"crypto/tls"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// AuthInfo is the credentials.AuthInfo (as *AuthInfo) of a connection accepted by the
// bank's server credentials: the TLS state plus the Identity derived once, at handshake
// time, so that no RPC on the connection parses the certificate again.
type AuthInfo struct {
	credentials.TLSInfo
	// Identity is the peer's identity, already checked against the trust domain.
	Identity Identity
}

type contextKey struct{}

// NewContext returns a copy of ctx carrying id, which must not change afterwards: the
// context keeps the pointer (an Identity is a few hundred bytes, and a copy of it in
// every call's context was one of the largest allocations of a call).
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the identity stored by NewContext (the authorization interceptor
// stores it for every RPC it lets through).
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(contextKey{}).(*Identity)
	if !ok || id == nil {
		return Identity{}, false
	}
	return *id, true
}

// FromPeer derives the identity of the gRPC peer in ctx from its verified leaf
// (VerifiedChains[0][0]), never from the raw certificates it sent. With AuthInfo (the bank's
// server credentials) it returns the identity computed at handshake. With a plain
// credentials.TLSInfo it parses the leaf and applies every check except the trust domain,
// which the caller must then check itself.
//
// The identity is a copy: a caller may change it without changing anyone else's.
func FromPeer(ctx context.Context) (Identity, error) {
	p, _ := peer.FromContext(ctx)
	id, err := OfPeer(p)
	if err != nil {
		return Identity{}, err
	}
	return *id, nil
}

// OfPeer is FromPeer for a peer already taken from the context (nil: no identity),
// without the copy: with the *AuthInfo of the bank's server credentials it returns the
// connection's own Identity, shared by every call on the connection, so that the
// authorization of each call copies nothing (an Identity is a few hundred bytes). It is
// for code that only reads the identity; anything that may change it, or hands it to
// code that may, takes FromPeer's copy.
func OfPeer(p *peer.Peer) (*Identity, error) {
	if p == nil || p.AuthInfo == nil {
		return nil, ErrNoIdentity
	}
	switch ai := p.AuthInfo.(type) {
	case *AuthInfo:
		return &ai.Identity, nil
	case AuthInfo:
		return &ai.Identity, nil
	case credentials.TLSInfo:
		return fromState(&ai.State)
	case *credentials.TLSInfo:
		return fromState(&ai.State)
	default:
		return nil, ErrNoIdentity
	}
}

func fromState(state *tls.ConnectionState) (*Identity, error) {
	chains := state.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return nil, ErrNoIdentity
	}
	id, err := parse(chains[0][0])
	if err != nil {
		return nil, err
	}
	id.Chain = chains[0]
	return &id, nil
}
