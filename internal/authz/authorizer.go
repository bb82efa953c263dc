package authz

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/identity"
)

// Messages sent to rejected clients: generic on purpose; the audit log has the detail.
const (
	msgUnauthenticated  = "no usable client identity"
	msgPermissionDenied = "permission denied"
	msgAuditUnavailable = "audit trail unavailable, retry later"
)

// Authorizer enforces a Policy on every call and writes one audit record per call.
// The policy sits behind an atomic.Pointer so it can be swapped while serving.
type Authorizer struct {
	policy   atomic.Pointer[Policy]
	logger   *slog.Logger
	check    func(chain []*x509.Certificate) error
	observer func(method string, code codes.Code, d Decision)
	sink     AuditSink
}

// AuditSink takes the audit record of every call (an *auditlog.Sink).
type AuditSink interface {
	// Admit refuses a call before it runs when the record could not be kept.
	Admit() error
	// Write hands the record over; it returns once the record is durable when the
	// sink requires it (a denial, a call with side effects).
	Write(r *auditlog.Record) error
}

// WithAuditSink sends one record per call to s instead of an Info record per decision to
// the logger: the decision, the call's outcome code and its duration. A unary call's
// record is handed over when the call ends and before its answer leaves; a stream's when
// it is authorized. A call that s does not Admit is refused with Unavailable before it
// is authorized or run, and a call whose record s fails to keep is answered Unavailable.
// Denials are still logged at Warn; allowed calls at Debug.
func WithAuditSink(s AuditSink) Option {
	return func(a *Authorizer) { a.sink = s }
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
	rec, _ := ctx.Value(recordKey{}).(*auditlog.Record)
	return a.authorize(ctx, method, rec)
}

// authorize is Authorize for a call whose method is known, with the audit record the
// interceptor times (nil: none). The peer is looked up once: every context lookup walks
// the call's chain of context values.
func (a *Authorizer) authorize(ctx context.Context, method string, rec *auditlog.Record) (context.Context, error) {
	c := call{method: method, rec: rec}
	c.peer, _ = peer.FromContext(ctx)
	p := a.policy.Load()
	id, err := identity.OfPeer(c.peer)
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
		return nil, a.unauthenticated(ctx, c, id, err)
	}
	onBehalfOf := metadata.ValueFromIncomingContext(ctx, OnBehalfOfKey)
	// On the heap from the start: the context keeps it (newContext), and the audit
	// and the observer take it by pointer, not as copies of a few hundred bytes.
	d := new(Decision)
	p.decide(d, id, method, onBehalfOf)
	if !d.Allowed {
		return nil, a.denied(ctx, c, d, onBehalfOf)
	}
	if aerr := a.auditCall(ctx, c, d, codes.OK, ""); aerr != nil {
		return nil, aerr
	}
	return newContext(ctx, d), nil
}

// unauthenticated audits a call without a usable identity (id nil: none at all) and
// returns its answer.
func (a *Authorizer) unauthenticated(ctx context.Context, c call, id *identity.Identity, err error) error {
	d := &Decision{Rule: err.Error()}
	if id != nil {
		d.Identity = *id
	}
	if aerr := a.auditCall(ctx, c, d, codes.Unauthenticated, ""); aerr != nil {
		return aerr
	}
	return status.Error(codes.Unauthenticated, msgUnauthenticated)
}

// denied audits a denied call and returns its answer.
func (a *Authorizer) denied(ctx context.Context, c call, d *Decision, onBehalfOf []string) error {
	var claimed string
	if len(onBehalfOf) > 0 {
		// Who the caller claimed to act for: attacker-chosen text, so bounded.
		claimed = truncate(strings.Join(onBehalfOf, ","), maxClaimLog)
	}
	if aerr := a.auditCall(ctx, c, d, codes.PermissionDenied, claimed); aerr != nil {
		return aerr
	}
	return status.Error(codes.PermissionDenied, msgPermissionDenied)
}

// errAuthOverride: go-grpc-middleware's auth lets a service replace the AuthFunc by
// implementing AuthFuncOverride; here that would bypass the policy, so it fails closed.
var errAuthOverride = errors.New("service implements AuthFuncOverride")

// UnaryServerInterceptor returns the unary authorization interceptor. With an audit
// sink it also times the call and hands its record over once the rest of the chain has
// answered, before the answer leaves.
func (a *Authorizer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		callCtx, rec, err := a.BeginUnary(ctx, info, time.Now())
		if err != nil {
			return nil, err
		}
		resp, err := handler(callCtx, req)
		if aerr := a.EndUnary(ctx, info.FullMethod, rec, err); aerr != nil {
			return nil, aerr
		}
		return resp, err
	}
}

// BeginUnary is the first half of UnaryServerInterceptor, for a server that runs its
// interceptors as one function: it authorizes the call that began at start and returns
// the context its handler gets (the caller's identity and Decision in it) and the call's
// audit record (nil without an audit sink), which EndUnary hands over with the
// handler's outcome. An error is the call's answer: the call was refused and audited.
//
// It decides as go-grpc-middleware's auth interceptor with Authorize would (a service
// implementing its AuthFuncOverride is refused: that would bypass the policy), without
// a context value for the record.
func (a *Authorizer) BeginUnary(ctx context.Context, info *grpc.UnaryServerInfo, start time.Time) (context.Context, *auditlog.Record, error) {
	if _, ok := info.Server.(auth.ServiceAuthFuncOverride); ok {
		if err := a.audit(ctx, info.FullMethod, Decision{Rule: errAuthOverride.Error()}, codes.Internal, ""); err != nil {
			return nil, nil, err
		}
		return nil, nil, status.Error(codes.Internal, "internal error")
	}
	if a.sink == nil {
		callCtx, err := a.authorize(ctx, info.FullMethod, nil)
		return callCtx, nil, err
	}
	rec := &auditlog.Record{Time: start}
	if err := a.sink.Admit(); err != nil {
		return nil, nil, a.auditUnavailable(ctx, info.FullMethod, "call refused before it ran", err)
	}
	callCtx, err := a.authorize(ctx, info.FullMethod, rec)
	if err != nil {
		// A refusal: its record, filled in by authorize, is handed over now.
		if aerr := a.EndUnary(ctx, info.FullMethod, rec, err); aerr != nil {
			return nil, nil, aerr
		}
		return nil, nil, err
	}
	return callCtx, rec, nil
}

// EndUnary hands over the audit record BeginUnary returned, with err, the outcome of
// the handler, before the answer leaves (and waits for it to be durable when the sink
// requires it). A non-nil result replaces the answer: Unavailable, the record may not
// be durable. A nil rec (no audit sink) does nothing.
func (a *Authorizer) EndUnary(ctx context.Context, method string, rec *auditlog.Record, err error) error {
	if rec == nil {
		return nil
	}
	rec.Code, rec.Duration = statusCode(err), time.Since(rec.Time)
	if werr := a.sink.Write(rec); werr != nil {
		return a.auditUnavailable(ctx, method, "call ran but its audit record may not be durable", werr)
	}
	return nil
}

// StreamServerInterceptor returns the streaming authorization interceptor. With an audit
// sink, a stream's record is handed over when it is authorized: it may last for hours.
func (a *Authorizer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	inner := auth.StreamServerInterceptor(a.Authorize)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if _, ok := srv.(auth.ServiceAuthFuncOverride); ok {
			if err := a.audit(ss.Context(), info.FullMethod, Decision{Rule: errAuthOverride.Error()}, codes.Internal, ""); err != nil {
				return err
			}
			return status.Error(codes.Internal, "internal error")
		}
		if a.sink == nil {
			return inner(srv, ss, info, handler)
		}
		rec := &auditlog.Record{Time: time.Now(), Stream: true}
		if err := a.sink.Admit(); err != nil {
			return a.auditUnavailable(ss.Context(), info.FullMethod, "stream refused before it ran", err)
		}
		wrapped := middleware.WrapServerStream(ss)
		wrapped.WrappedContext = context.WithValue(ss.Context(), recordKey{}, rec)
		return inner(srv, wrapped, info, handler)
	}
}

// recordKey carries the audit record of the current call from the interceptor that
// times it to Authorize, which fills in the decision.
type recordKey struct{}

// auditUnavailable logs why a call is answered Unavailable for want of an audit trail.
func (a *Authorizer) auditUnavailable(ctx context.Context, method, what string, err error) error {
	level := slog.LevelError
	if errors.Is(err, auditlog.ErrBusy) {
		level = slog.LevelDebug // counted in bank_audit_refused_total; a log line each would add to the load
	}
	a.logger.Log(ctx, level, "audit: "+what, "method", method, "err", err)
	return status.Error(codes.Unavailable, msgAuditUnavailable)
}

// statusCode is the code a handler's error reaches the client with (as grpc-go maps it).
func statusCode(err error) codes.Code {
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return status.FromContextError(err).Code()
}

// maxClaimLog bounds the on-behalf-of text a denied caller can put in the audit log.
const maxClaimLog = 256

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// audit records a decision. Without a sink it writes the one slog record of the
// decision (Info, Warn for a denial). With one it fills the call's audit record and, for a
// stream or a call the interceptors did not time, hands it over at once; its error is
// then the call's answer. A delegated call's record names the delegate (spiffe_id, roles,
// serial: the certificate that called), the end user (on_behalf_of, on_behalf_roles), the
// scope the call got (on_behalf_scope) and the on_behalf rule that allowed it
// (on_behalf_rule; rule holds the whole chain). claimed is the end user a denied caller
// named, bounded.
func (a *Authorizer) audit(ctx context.Context, method string, d Decision, code codes.Code, claimed string) error {
	c := call{method: method}
	c.rec, _ = ctx.Value(recordKey{}).(*auditlog.Record)
	c.peer, _ = peer.FromContext(ctx)
	return a.auditCall(ctx, c, &d, code, claimed)
}

// call is what audit needs of a call besides the decision: its method, its peer, and the
// record the interceptor times (nil if none).
type call struct {
	method string
	peer   *peer.Peer
	rec    *auditlog.Record
}

func (a *Authorizer) auditCall(ctx context.Context, c call, d *Decision, code codes.Code, claimed string) error {
	method := c.method
	defer func() {
		if a.observer != nil {
			a.observer(method, code, *d)
		}
	}()
	if a.sink == nil {
		a.log(ctx, c.peer, method, d, code, claimed, slog.LevelInfo)
		return nil
	}
	if code != codes.OK {
		a.log(ctx, c.peer, method, d, code, claimed, slog.LevelWarn)
	} else if a.logger.Enabled(ctx, slog.LevelDebug) {
		a.log(ctx, c.peer, method, d, code, claimed, slog.LevelDebug)
	}
	rec, timed := c.rec, c.rec != nil
	if !timed {
		rec = &auditlog.Record{Time: time.Now()}
	}
	fillRecord(ctx, c.peer, rec, method, d, code, claimed)
	if timed && !rec.Stream {
		return nil // the unary interceptor hands it over with the outcome
	}
	rec.Code, rec.Duration = code, time.Since(rec.Time)
	if err := a.sink.Write(rec); err != nil {
		return a.auditUnavailable(ctx, method, "audit record may not be durable", err)
	}
	return nil
}

// fillRecord copies the decision into the audit record. Nothing is formatted here: the
// sink's writer does that.
func fillRecord(ctx context.Context, p *peer.Peer, rec *auditlog.Record, method string, d *Decision, code codes.Code, claimed string) {
	rec.Method, rec.Allowed, rec.Code = method, code == codes.OK, code
	rec.SPIFFEID, rec.Roles, rec.Rule, rec.Serial = d.Identity.ID.String(), d.Roles, d.Rule, d.Identity.SerialHex
	if p != nil {
		rec.Peer = p.Addr
	}
	if s := d.OnBehalfOf; s != nil {
		rec.OnBehalfOf, rec.OnBehalfRoles, rec.OnBehalfScope, rec.OnBehalfRule = s.ID.String(), s.Roles, scopeName(s.OwnOnly), s.Rule
	} else {
		rec.OnBehalfOf = claimed
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		rec.TraceID, rec.SpanID = sc.TraceID(), sc.SpanID()
	}
}

func scopeName(ownOnly bool) string {
	if ownOnly {
		return ScopeOwn
	}
	return ScopeAny
}

// log writes the decision as one slog record at level.
func (a *Authorizer) log(ctx context.Context, p *peer.Peer, method string, d *Decision, code codes.Code, claimed string, level slog.Level) {
	decision := "allow"
	if code != codes.OK {
		decision = "deny"
	}
	if level == slog.LevelInfo && code != codes.OK {
		level = slog.LevelWarn
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
	if p != nil && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	if s := d.OnBehalfOf; s != nil {
		attrs = append(attrs,
			slog.Bool("delegated", true),
			slog.String("on_behalf_of", s.ID.String()),
			slog.Any("on_behalf_roles", s.Roles),
			slog.String("on_behalf_scope", scopeName(s.OwnOnly)),
			slog.String("on_behalf_rule", s.Rule))
	} else if claimed != "" {
		attrs = append(attrs, slog.String("on_behalf_of", claimed))
	}
	a.logger.LogAttrs(ctx, level, "authz decision", attrs...)
}
