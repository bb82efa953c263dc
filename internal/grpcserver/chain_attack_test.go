package grpcserver_test

// Attacks on the unary chain (chain.go) over real mutual TLS on 127.0.0.1, with
// certificates made at test time. Each test states the property it checks; a failing
// test is a finding.

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/tracing"
)

const attackPolicy = `trust_domain: bank.local
identities:
  - name: customers
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/" }
    roles: [customer]
roles:
  customer: { methods: ["/attack.v1.Svc/*"] }
  authenticated:
    methods:
      - /grpc.health.v1.Health/*
      - /grpc.reflection.v1.ServerReflection/*
      - /grpc.reflection.v1alpha.ServerReflection/*
`

// recSink is an authz.AuditSink keeping every record handed over.
type recSink struct {
	mu   sync.Mutex
	recs []auditlog.Record
}

func (s *recSink) Admit() error { return nil }
func (s *recSink) Write(r *auditlog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, *r)
	return nil
}
func (s *recSink) forMethod(m string) []auditlog.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []auditlog.Record
	for _, r := range s.recs {
		if r.Method == m {
			out = append(out, r)
		}
	}
	return out
}

// nilErr is an error type whose Error dereferences its receiver: a typed nil *nilErr
// returned as an error (a classic Go mistake in a handler) panics when formatted.
type nilErr struct{ msg string }

func (e *nilErr) Error() string { return e.msg }

type attackSvc struct {
	ran atomic.Int64 // handler bodies that ran
}

func (s *attackSvc) base() *attackSvc { return s }

func attackUnary(name string, fn func(s *attackSvc, ctx context.Context, in *wrapperspb.StringValue) (any, error)) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		s := srv.(interface{ base() *attackSvc }).base()
		h := func(ctx context.Context, req any) (any, error) {
			s.ran.Add(1)
			return fn(s, ctx, req.(*wrapperspb.StringValue))
		}
		if interceptor == nil {
			return h(ctx, in)
		}
		return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/attack.v1.Svc/" + name}, h)
	}}
}

var attackDesc = grpc.ServiceDesc{
	ServiceName: "attack.v1.Svc",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		attackUnary("Ok", func(_ *attackSvc, _ context.Context, in *wrapperspb.StringValue) (any, error) { return in, nil }),
		// BadErr moves the money, then returns a typed nil error.
		attackUnary("BadErr", func(_ *attackSvc, _ context.Context, in *wrapperspb.StringValue) (any, error) {
			var e *nilErr
			return nil, e
		}),
		// Goexit ends the handler's goroutine without a panic (runtime.Goexit, as
		// t.FailNow or a library's fatal path does).
		attackUnary("Goexit", func(_ *attackSvc, _ context.Context, in *wrapperspb.StringValue) (any, error) {
			runtime.Goexit()
			return in, nil
		}),
		// Careless looks its caller up with identity.FromPeer and rewrites a field of what
		// it got (a handler "normalizing" the ID for its own use).
		attackUnary("Careless", func(_ *attackSvc, ctx context.Context, in *wrapperspb.StringValue) (any, error) {
			id, err := identity.FromPeer(ctx)
			if err != nil {
				return nil, err
			}
			id.ID = spiffeid.RequireFromString(in.GetValue())
			return in, nil
		}),
		// Wait waits for its context to end.
		attackUnary("Wait", func(_ *attackSvc, ctx context.Context, in *wrapperspb.StringValue) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}),
		// Who answers the identity and the end user the authorizer put in the context.
		attackUnary("Who", func(_ *attackSvc, ctx context.Context, in *wrapperspb.StringValue) (any, error) {
			d, ok := authz.FromContext(ctx)
			if !ok {
				return nil, status.Error(codes.Internal, "no decision")
			}
			out := d.Identity.ID.String()
			if d.OnBehalfOf != nil {
				out += "|" + d.OnBehalfOf.ID.String()
			}
			return wrapperspb.String(out), nil
		}),
	},
}

type attackHarness struct {
	pki  *pkitest.PKI
	src  *tlsconfig.Source
	srv  *grpcserver.Server
	svc  *attackSvc
	sink *recSink
	addr string
	logs *logRecorder
}

func startAttack(tb testing.TB, policyYAML string, opts ...grpcserver.Option) *attackHarness {
	tb.Helper()
	return startAttackWith(tb, policyYAML, nil, opts...)
}

// startAttackWith is startAttack registering impl (nil: a plain *attackSvc).
func startAttackWith(tb testing.TB, policyYAML string, impl any, opts ...grpcserver.Option) *attackHarness {
	tb.Helper()
	pp := newPKIAndPolicyFrom(tb, policyYAML)
	h := &attackHarness{pki: pp.pki, src: pp.src, svc: &attackSvc{}, sink: &recSink{}, logs: &logRecorder{}}
	var err error
	h.srv, err = grpcserver.New(pp.src, pp.policy, slog.New(h.logs), append([]grpcserver.Option{grpcserver.WithAuditSink(h.sink)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	if impl == nil {
		impl = h.svc
	} else if o, ok := impl.(*overrideSvc); ok {
		h.svc = &o.attackSvc
	}
	h.srv.RegisterService(&attackDesc, impl)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	h.addr = lis.Addr().String()
	go func() { _ = h.srv.Serve(lis) }()
	tb.Cleanup(func() { h.srv.GRPC().Stop() })
	return h
}

func (h *attackHarness) conn(tb testing.TB, spiffeID string) *grpc.ClientConn {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, h.pki.Client(tb, spiffeID).TLSCertificate(), h.pki.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	return dial(tb, h.addr, tlsconfig.ClientCredentials(src, "localhost"))
}

func invoke(ctx context.Context, cc *grpc.ClientConn, method, value string) (string, error) {
	out := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, method, wrapperspb.String(value), out)
	return out.GetValue(), err
}

// A handler that ran (it may have moved money) and returned an error that panics when
// formatted (a typed nil) is answered Internal and still has its audit record, with
// that code (attack4 finding 2: the record was lost).
func TestAttackHandlerErrorThatPanicsKeepsAuditRecord(t *testing.T) {
	h := startAttack(t, attackPolicy)
	cc := h.conn(t, "spiffe://bank.local/customer/alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := invoke(ctx, cc, "/attack.v1.Svc/BadErr", "x"); status.Code(err) != codes.Internal {
		t.Fatalf("answer %v, want Internal", err)
	}
	if h.svc.ran.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", h.svc.ran.Load())
	}
	if recs := h.sink.forMethod("/attack.v1.Svc/BadErr"); len(recs) != 1 || recs[0].Code != codes.Internal {
		t.Fatalf("audit records %+v, want one of code Internal", recs)
	}
}

// A handler whose goroutine ends with runtime.Goexit never answers (nothing can stop a
// Goexit), but its call has its audit record, is counted and is logged, as Internal, not
// as a call that answered OK (attack4 findings 3 and 4).
func TestAttackHandlerGoexitAuditedAsInternal(t *testing.T) {
	m := telemetry.NewMetrics()
	h := startAttack(t, attackPolicy, grpcserver.WithMetrics(m))
	cc := h.conn(t, "spiffe://bank.local/customer/alice")
	ctx, cancel := context.WithCancel(context.Background())
	answered := make(chan error, 1)
	go func() { _, err := invoke(ctx, cc, "/attack.v1.Svc/Goexit", "x"); answered <- err }()
	waitFor(t, func() bool { return len(h.sink.forMethod("/attack.v1.Svc/Goexit")) > 0 })
	waitFor(t, func() bool {
		return len(h.logs.find(map[string]any{"msg": "finished call", "grpc.method": "Goexit"})) > 0
	})
	if recs := h.sink.forMethod("/attack.v1.Svc/Goexit"); len(recs) != 1 || recs[0].Code != codes.Internal || !recs[0].Allowed {
		t.Errorf("audit records %+v, want one allowed call of code Internal", recs)
	}
	if recs := h.logs.find(map[string]any{"msg": "finished call", "grpc.method": "Goexit", "grpc.code": "Internal"}); len(recs) != 1 {
		t.Errorf("call log records %v, want one of code Internal", recs)
	}
	if recs := h.logs.find(map[string]any{"msg": "panic in gRPC call", "panic": "runtime.Goexit in a gRPC call: it never answers"}); len(recs) != 1 {
		t.Errorf("%d records of the Goexit, want 1", len(recs))
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["grpc_method"] == "Goexit" && mt.GetCounter() != nil {
				counted[f.GetName()+"/"+labels["grpc_code"]] = mt.GetCounter().GetValue()
			}
		}
	}
	if counted["grpc_server_handled_total/Internal"] != 1 || counted["grpc_server_handled_total/OK"] != 0 || counted["grpc_server_msg_sent_total/"] != 0 {
		t.Errorf("metrics of the Goexit call %v, want handled Internal 1, OK 0, nothing sent", counted)
	}
	select {
	case err := <-answered:
		t.Errorf("the call was answered (%v): a Goexit cannot answer", err)
	default:
	}
	cancel()
	if err := <-answered; status.Code(err) != codes.Canceled {
		t.Errorf("after the client gave up: %v, want Canceled", err)
	}
}

// An interceptor an operator adds with WithServerOptions runs after the chain: with
// grpc.ChainUnaryInterceptor it sees only authorized calls; with grpc.UnaryInterceptor,
// which grpc-go would run before the whole chain (rate limit, authorization, recovery),
// New refuses to build the server (attack4 finding 5).
func TestAttackServerOptionInterceptorRunsAfterAuthorization(t *testing.T) {
	var sawUndecided, saw atomic.Int64
	spy := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		saw.Add(1)
		if _, ok := authz.FromContext(ctx); !ok {
			sawUndecided.Add(1) // the request of a caller not (yet) authorized
		}
		return handler(ctx, req)
	}
	pp := newPKIAndPolicyFrom(t, attackPolicy)
	for _, opt := range []grpc.ServerOption{grpc.UnaryInterceptor(spy), grpc.StreamInterceptor(func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error { return nil })} {
		if _, err := grpcserver.New(pp.src, pp.policy, nil, grpcserver.WithServerOptions(opt)); err == nil || !strings.Contains(err.Error(), "ChainUnaryInterceptor") {
			t.Errorf("New with an interceptor set to run first: %v, want an error naming grpc.ChainUnaryInterceptor", err)
		}
	}
	h := startAttack(t, attackPolicy, grpcserver.WithServerOptions(grpc.ChainUnaryInterceptor(spy)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := invoke(ctx, h.conn(t, "spiffe://bank.local/stranger/mallory"), "/attack.v1.Svc/Ok", "x"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stranger got %v, want PermissionDenied", err)
	}
	if _, err := invoke(ctx, h.conn(t, "spiffe://bank.local/customer/alice"), "/attack.v1.Svc/Ok", "x"); err != nil {
		t.Fatalf("alice: %v", err)
	}
	if saw.Load() != 1 || sawUndecided.Load() != 0 {
		t.Errorf("the added interceptor saw %d calls, %d of them unauthorized; want alice's only", saw.Load(), sawUndecided.Load())
	}
}

// Held: many concurrent calls on one connection, half delegated to different end
// users: each handler sees its own caller and end user (run with -race).
func TestAttackConcurrentDecisionsStayPerCall(t *testing.T) {
	h := startAttack(t, delegationPolicy)
	cc := h.conn(t, "spiffe://bank.local/service/payments")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			users := []string{"spiffe://bank.local/customer/alice", "spiffe://bank.local/customer/bob"}
			want := "spiffe://bank.local/service/payments"
			cctx := ctx
			if i%3 != 0 {
				u := users[i%2]
				cctx = metadataCtx(ctx, u)
				want += "|" + u
			}
			got, err := invoke(cctx, cc, "/attack.v1.Svc/Who", "x")
			if err != nil || got != want {
				errs <- got + " " + want + " " + errString(err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := len(h.sink.forMethod("/attack.v1.Svc/Who")); n != 400 {
		t.Errorf("%d audit records for 400 calls", n)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

const delegationPolicy = `trust_domain: bank.local
identities:
  - name: customers
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/" }
    roles: [customer]
  - name: payments
    match: { spiffe_id: "spiffe://bank.local/service/payments" }
    roles: [payments-service]
roles:
  customer:
    methods: ["/attack.v1.Svc/*"]
    on_behalf:
      methods: ["/attack.v1.Svc/*"]
  payments-service:
    delegate: true
    methods: ["/attack.v1.Svc/*"]
  authenticated:
    methods:
      - /grpc.health.v1.Health/*
      - /grpc.reflection.v1.ServerReflection/*
      - /grpc.reflection.v1alpha.ServerReflection/*
`

func metadataCtx(ctx context.Context, onBehalfOf string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, onBehalfOf)
}

// Held: the policy swapped back and forth while calls run: every answer agrees with
// its call's audit record (an OK answer has an allowed record, a PermissionDenied one
// a denied record), one record per call, no handler run on a denial.
func TestAttackPolicyHotSwapDuringCalls(t *testing.T) {
	h := startAttack(t, attackPolicy)
	deny, err := authz.ParsePolicy("deny.yaml", []byte(strings.Replace(attackPolicy, `customer: { methods: ["/attack.v1.Svc/*"] }`, `customer: { methods: ["/attack.v1.Svc/Who"] }`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	allow := h.srv.Authorizer().Policy()
	cc := h.conn(t, "spiffe://bank.local/customer/alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				h.srv.Authorizer().SetPolicy(deny)
			} else {
				h.srv.Authorizer().SetPolicy(allow)
			}
			runtime.Gosched()
		}
	}()
	var ok, denied atomic.Int64
	var wg sync.WaitGroup
	for range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := invoke(ctx, cc, "/attack.v1.Svc/Ok", "x")
			switch status.Code(err) {
			case codes.OK:
				ok.Add(1)
			case codes.PermissionDenied:
				denied.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	var recOK, recDenied int64
	for _, r := range h.sink.forMethod("/attack.v1.Svc/Ok") {
		switch {
		case r.Allowed && r.Code == codes.OK:
			recOK++
		case !r.Allowed && r.Code == codes.PermissionDenied:
			recDenied++
		default:
			t.Errorf("odd record %+v", r)
		}
	}
	t.Logf("answers ok=%d denied=%d, records ok=%d denied=%d", ok.Load(), denied.Load(), recOK, recDenied)
	if recOK != ok.Load() || recDenied != denied.Load() || h.svc.ran.Load() != ok.Load() {
		t.Errorf("answers ok=%d denied=%d, records ok=%d denied=%d, handlers %d", ok.Load(), denied.Load(), recOK, recDenied, h.svc.ran.Load())
	}
}

// Held: a denied delegation with a huge attacker-chosen on-behalf-of claim: the
// record keeps a bounded claim, the call is denied.
func TestAttackHugeOnBehalfOfClaim(t *testing.T) {
	h := startAttack(t, attackPolicy)
	cc := h.conn(t, "spiffe://bank.local/customer/alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	claim := "spiffe://bank.local/customer/" + strings.Repeat("a", 6000)
	md := metadata.Pairs(authz.OnBehalfOfKey, claim, authz.OnBehalfOfKey, claim)
	_, err := invoke(metadata.NewOutgoingContext(ctx, md), cc, "/attack.v1.Svc/Ok", "x")
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v, want PermissionDenied", err)
	}
	recs := h.sink.forMethod("/attack.v1.Svc/Ok")
	if len(recs) != 1 || len(recs[0].OnBehalfOf) > 300 || recs[0].Allowed {
		t.Fatalf("records %d, claim kept %d bytes", len(recs), len(recs[0].OnBehalfOf))
	}
}

// failSink admits every call and fails every Write.
type failSink struct{ writes atomic.Int64 }

func (s *failSink) Admit() error { return nil }
func (s *failSink) Write(*auditlog.Record) error {
	s.writes.Add(1)
	return errors.New("disk full")
}

// overrideSvc implements go-grpc-middleware's AuthFuncOverride, which would bypass the
// policy if honoured.
type overrideSvc struct{ attackSvc }

func (*overrideSvc) AuthFuncOverride(ctx context.Context, _ string) (context.Context, error) {
	return ctx, nil
}

// Held: a sink that cannot keep records turns an allowed call and a denial into
// Unavailable (one Write each); a service implementing AuthFuncOverride is refused
// without running its handler, with a record.
func TestAttackSinkFailureAndAuthFuncOverride(t *testing.T) {
	sink := &failSink{}
	failing := startAttack(t, attackPolicy, grpcserver.WithAuditSink(sink)) // replaces the recording sink
	csrc := func(id string) *grpc.ClientConn { return failing.conn(t, id) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := invoke(ctx, csrc("spiffe://bank.local/customer/alice"), "/attack.v1.Svc/Ok", "x"); status.Code(err) != codes.Unavailable {
		t.Errorf("allowed call with a failing sink: %v, want Unavailable", err)
	}
	if _, err := invoke(ctx, csrc("spiffe://bank.local/stranger/m"), "/attack.v1.Svc/Ok", "x"); status.Code(err) != codes.Unavailable {
		t.Errorf("denied call with a failing sink: %v, want Unavailable", err)
	}
	if sink.writes.Load() != 2 {
		t.Errorf("%d writes, want 2", sink.writes.Load())
	}

	h := startAttackWith(t, attackPolicy, &overrideSvc{})
	cc := h.conn(t, "spiffe://bank.local/customer/alice")
	if _, err := invoke(ctx, cc, "/attack.v1.Svc/Ok", "x"); status.Code(err) != codes.Internal {
		t.Errorf("AuthFuncOverride service: %v, want Internal", err)
	}
	if n := len(h.sink.forMethod("/attack.v1.Svc/Ok")); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}

// Shared *Identity: what identity.FromPeer returns is now the connection's own Identity
// (before fee7f5e, a copy). One careless handler that writes to it changes who every
// later call on the connection is: authorization, the audit record, the rate limit key.
// Property: one call cannot change another call's identity.
func TestAttackIdentityMutationStaysInItsCall(t *testing.T) {
	h := startAttack(t, attackPolicy)
	cc := h.conn(t, "spiffe://bank.local/customer/alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := invoke(ctx, cc, "/attack.v1.Svc/Careless", "spiffe://bank.local/customer/bob"); err != nil {
		t.Fatal(err)
	}
	got, err := invoke(ctx, cc, "/attack.v1.Svc/Who", "x")
	if err != nil {
		t.Fatal(err)
	}
	if got != "spiffe://bank.local/customer/alice" {
		t.Errorf("the next call on alice's connection was authorized and audited as %s", got)
	}
	for _, r := range h.sink.forMethod("/attack.v1.Svc/Who") {
		if r.SPIFFEID != "spiffe://bank.local/customer/alice" {
			t.Errorf("audit record of alice's call names %s", r.SPIFFEID)
		}
	}
}

// Held: on-behalf-of is honoured only per policy: a caller whose role may not delegate,
// two values, an end user of another trust domain or without a role, a malformed ID,
// are all denied (with a durable denial record), never run as the caller alone.
func TestAttackDelegationOnlyPerPolicy(t *testing.T) {
	h := startAttack(t, delegationPolicy)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	customer := h.conn(t, "spiffe://bank.local/customer/alice")
	payments := h.conn(t, "spiffe://bank.local/service/payments")
	for _, tc := range []struct {
		name string
		cc   *grpc.ClientConn
		md   metadata.MD
	}{
		{"customer delegating", customer, metadata.Pairs(authz.OnBehalfOfKey, "spiffe://bank.local/customer/bob")},
		{"two values", payments, metadata.Pairs(authz.OnBehalfOfKey, "spiffe://bank.local/customer/bob", authz.OnBehalfOfKey, "spiffe://bank.local/customer/bob")},
		{"other trust domain", payments, metadata.Pairs(authz.OnBehalfOfKey, "spiffe://evil.local/customer/bob")},
		{"end user without role", payments, metadata.Pairs(authz.OnBehalfOfKey, "spiffe://bank.local/teller/tina")},
		{"delegate as end user", payments, metadata.Pairs(authz.OnBehalfOfKey, "spiffe://bank.local/service/payments")},
		{"malformed", payments, metadata.Pairs(authz.OnBehalfOfKey, "spiffe://bank.local/customer/../teller/tina")},
		{"empty", payments, metadata.Pairs(authz.OnBehalfOfKey, "")},
		{"upper-case key", payments, metadata.Pairs("X-Bank-On-Behalf-Of", "spiffe://bank.local/teller/tina")},
	} {
		got, err := invoke(metadata.NewOutgoingContext(ctx, tc.md), tc.cc, "/attack.v1.Svc/Who", "x")
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %q %v, want PermissionDenied", tc.name, got, err)
		}
	}
	if h.svc.ran.Load() != 0 {
		t.Errorf("%d handlers ran", h.svc.ran.Load())
	}
}

// Held: method names that differ from a registered one (slashes, case, suffixes, no
// leading slash) reach no handler and no policy rule.
func TestAttackWeirdMethodNames(t *testing.T) {
	h := startAttack(t, attackPolicy)
	cc := h.conn(t, "spiffe://bank.local/stranger/mallory")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range []string{
		"/attack.v1.Svc/Ok/", "//attack.v1.Svc/Ok", "/attack.v1.Svc//Ok", "attack.v1.Svc/Ok",
		"/attack.v1.svc/Ok", "/attack.v1.Svc/ok", "/attack.v1.Svc/Ok%00", "/attack.v1.Svc/Ok ", "/./attack.v1.Svc/Ok",
		"/attack.v1.Svc/*", "/attack.v1.Svc/",
	} {
		_, err := invoke(ctx, cc, m, "x")
		if c := status.Code(err); c != codes.Unimplemented && c != codes.PermissionDenied && c != codes.Internal {
			t.Errorf("%q: %v", m, err)
		}
	}
	if h.svc.ran.Load() != 0 {
		t.Errorf("%d handlers ran for a stranger", h.svc.ran.Load())
	}
}

// Held: the one stage outside the chain's recovery, the call context of tracing (W3C
// trace context from the caller's metadata), survives hostile traceparent/tracestate
// values; the server keeps serving and the calls are authorized and audited.
func TestAttackHostileTraceContext(t *testing.T) {
	tr, err := tracing.New(context.Background(), "attack", tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.CallContext() == nil {
		t.Fatal("no call context")
	}
	h := startAttack(t, attackPolicy, grpcserver.WithCallContext(tr.CallContext()))
	cc := h.conn(t, "spiffe://bank.local/customer/alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	values := []string{
		"", "00", "00-", "ff-" + strings.Repeat("f", 32) + "-" + strings.Repeat("f", 16) + "-ff",
		"00-00000000000000000000000000000000-0000000000000000-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-" + strings.Repeat("x", 4000),
		strings.Repeat("-", 3000), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
	}
	for i, v := range values {
		md := metadata.Pairs("traceparent", v, "tracestate", strings.Repeat("a=b,", i*200)+"=,==,a")
		if _, err := invoke(metadata.NewOutgoingContext(ctx, md), cc, "/attack.v1.Svc/Ok", "x"); err != nil {
			t.Errorf("traceparent %.40q: %v", v, err)
		}
	}
	if n := len(h.sink.forMethod("/attack.v1.Svc/Ok")); n != len(values) {
		t.Errorf("%d records for %d calls", n, len(values))
	}
	// A well-formed traceparent reaches the audit record of a unary call.
	md := metadata.Pairs("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if _, err := invoke(metadata.NewOutgoingContext(ctx, md), cc, "/attack.v1.Svc/Who", "x"); err != nil {
		t.Fatal(err)
	}
	if recs := h.sink.forMethod("/attack.v1.Svc/Who"); len(recs) != 1 || hex.EncodeToString(recs[0].TraceID[:]) != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("records %+v, want one with the caller's trace id", recs)
	}
}

// Held: a unary call without a deadline gets the default one; the handler waiting on it
// ends DeadlineExceeded, audited with that code.
func TestAttackDefaultDeadline(t *testing.T) {
	h := startAttack(t, attackPolicy, grpcserver.WithDefaultDeadline(200*time.Millisecond))
	cc := h.conn(t, "spiffe://bank.local/customer/alice")
	start := time.Now()
	_, err := invoke(context.Background(), cc, "/attack.v1.Svc/Wait", "x")
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 5*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	if recs := h.sink.forMethod("/attack.v1.Svc/Wait"); len(recs) != 1 || recs[0].Code != codes.DeadlineExceeded {
		t.Errorf("records %+v", recs)
	}
}
