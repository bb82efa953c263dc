package authz

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/identity"
)

// Messages sent to rejected clients: generic on purpose; the audit log has the detail.
const (
	msgUnauthenticated  = "no usable client identity"
	msgPermissionDenied = "permission denied"
)

// Authorizer enforces a Policy on every call and writes one audit record per decision.
// The policy sits behind an atomic.Pointer so it can be swapped while serving.
type Authorizer struct {
	policy   atomic.Pointer[Policy]
	logger   *slog.Logger
	check    func(chain []*x509.Certificate) error
	observer func(method string, code codes.Code, d Decision)
}

// Option configures an Authorizer.
type Option func(*Authorizer)

// WithCertificateCheck makes every call re-check the caller's verified chain (leaf first,
// identity.Identity.Chain; the leaf alone when there is no chain) with fn, such as
// tlsconfig.Source.CheckChain (current CRL, expiry). An error rejects the call as
// Unauthenticated: the credential is no longer usable. It lets a revocation reach
// connections that were accepted before it.
func WithCertificateCheck(fn func(chain []*x509.Certificate) error) Option {
	return func(a *Authorizer) { a.check = fn }
}

// WithDecisionObserver calls fn after every decision has been audited, with the method,
// the status code the call gets from the authorizer (OK when allowed) and the decision
// (its Identity and Roles are empty when the caller had no usable identity), e.g. to
// count decisions in a metric.
func WithDecisionObserver(fn func(method string, code codes.Code, d Decision)) Option {
	return func(a *Authorizer) { a.observer = fn }
}

// NewAuthorizer returns an Authorizer enforcing p and auditing to logger.
func NewAuthorizer(p *Policy, logger *slog.Logger, opts ...Option) *Authorizer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Authorizer{logger: logger}
	a.policy.Store(p)
	for _, opt := range opts {
		opt(a)
	}
	return a
}

// Policy returns the policy in force.
func (a *Authorizer) Policy() *Policy { return a.policy.Load() }

// SetPolicy swaps the policy in force; the next call is decided by p.
func (a *Authorizer) SetPolicy(p *Policy) {
	if p != nil {
		a.policy.Store(p)
	}
}

// Authorize is the go-grpc-middleware auth.AuthFunc: it derives the caller's identity,
// decides, audits, and returns a context carrying the identity and the Decision. No usable
// identity (or a revoked certificate) is Unauthenticated; a denial is PermissionDenied.
func (a *Authorizer) Authorize(ctx context.Context) (context.Context, error) {
	method, _ := grpc.Method(ctx)
	p := a.policy.Load()
	id, err := identity.FromPeer(ctx)
	if err == nil && !id.ID.MemberOf(p.td) {
		err = identity.ErrWrongTrustDomain
	}
	if err == nil && a.check != nil {
		chain := id.Chain
		if len(chain) == 0 {
			chain = []*x509.Certificate{id.Leaf}
		}
		err = a.check(chain)
	}
	if err != nil {
		a.audit(ctx, method, Decision{Identity: id, Rule: err.Error()}, codes.Unauthenticated)
		return nil, status.Error(codes.Unauthenticated, msgUnauthenticated)
	}
	onBehalfOf := metadata.ValueFromIncomingContext(ctx, OnBehalfOfKey)
	d := p.Decide(id, method, onBehalfOf...)
	if !d.Allowed {
		var claimed []slog.Attr
		if len(onBehalfOf) > 0 {
			// Who the caller claimed to act for: attacker-chosen text, so bounded.
			claimed = append(claimed, slog.String("on_behalf_of", truncate(strings.Join(onBehalfOf, ","), maxClaimLog)))
		}
		a.audit(ctx, method, d, codes.PermissionDenied, claimed...)
		return nil, status.Error(codes.PermissionDenied, msgPermissionDenied)
	}
	a.audit(ctx, method, d, codes.OK)
	return NewContext(identity.NewContext(ctx, id), d), nil
}

// errAuthOverride: go-grpc-middleware's auth lets a service replace the AuthFunc by
// implementing AuthFuncOverride; here that would bypass the policy, so it fails closed.
var errAuthOverride = errors.New("service implements AuthFuncOverride")

// UnaryServerInterceptor returns the unary authorization interceptor.
func (a *Authorizer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	inner := auth.UnaryServerInterceptor(a.Authorize)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := info.Server.(auth.ServiceAuthFuncOverride); ok {
			a.audit(ctx, info.FullMethod, Decision{Rule: errAuthOverride.Error()}, codes.Internal)
			return nil, status.Error(codes.Internal, "internal error")
		}
		return inner(ctx, req, info, handler)
	}
}

// StreamServerInterceptor returns the streaming authorization interceptor.
func (a *Authorizer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	inner := auth.StreamServerInterceptor(a.Authorize)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if _, ok := srv.(auth.ServiceAuthFuncOverride); ok {
			a.audit(ss.Context(), info.FullMethod, Decision{Rule: errAuthOverride.Error()}, codes.Internal)
			return status.Error(codes.Internal, "internal error")
		}
		return inner(srv, ss, info, handler)
	}
}

// maxClaimLog bounds the on-behalf-of text a denied caller can put in the audit log.
const maxClaimLog = 256

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// audit writes the one record of a decision. A delegated call's record names the delegate
// (spiffe_id, roles, serial: the certificate that called), the end user (on_behalf_of,
// on_behalf_roles), the scope the call got (on_behalf_scope) and the on_behalf rule that
// allowed it (on_behalf_rule; rule holds the whole chain). extra are added as they are.
func (a *Authorizer) audit(ctx context.Context, method string, d Decision, code codes.Code, extra ...slog.Attr) {
	decision, level := "allow", slog.LevelInfo
	if code != codes.OK {
		decision, level = "deny", slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.Bool("audit", true),
		slog.String("decision", decision),
		slog.String("code", code.String()),
		slog.String("method", method),
		slog.String("spiffe_id", d.Identity.ID.String()),
		slog.Any("roles", d.Roles),
		slog.String("rule", d.Rule),
		slog.String("serial", d.Identity.SerialHex),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	if s := d.OnBehalfOf; s != nil {
		scope := ScopeAny
		if s.OwnOnly {
			scope = ScopeOwn
		}
		attrs = append(attrs,
			slog.Bool("delegated", true),
			slog.String("on_behalf_of", s.ID.String()),
			slog.Any("on_behalf_roles", s.Roles),
			slog.String("on_behalf_scope", scope),
			slog.String("on_behalf_rule", s.Rule))
	}
	attrs = append(attrs, extra...)
	a.logger.LogAttrs(ctx, level, "authz decision", attrs...)
	if a.observer != nil {
		a.observer(method, code, d)
	}
}
