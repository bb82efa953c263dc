package grpcserver_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/whoami"
)

var td = spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)

const serverID = "spiffe://bank.local/service/accounts"

// testPolicy covers the test service, IdentityService, health and reflection.
const testPolicy = `trust_domain: bank.local
identities:
  - name: customers
    match: { spiffe_id_prefix: "spiffe://bank.local/customer/" }
    roles: [customer]
  - name: tellers
    match: { spiffe_id_prefix: "spiffe://bank.local/teller/" }
    roles: [teller]
roles:
  customer: { methods: [/test.v1.TestService/Echo, /test.v1.TestService/Stream, /test.v1.TestService/Block, /test.v1.TestService/Hold] }
  teller:   { scope: any, methods: ["/test.v1.TestService/*"] }
  authenticated:
    methods:
      - /bank.identity.v1.IdentityService/WhoAmI
      - /grpc.health.v1.Health/*
      - /grpc.reflection.v1.ServerReflection/*
      - /grpc.reflection.v1alpha.ServerReflection/*
`

// harness is a running grpcserver.Server with the test service, its PKI, its logs, its
// rejected handshakes and a count of handler invocations.
type harness struct {
	pki        *pkitest.PKI
	src        *tlsconfig.Source
	srv        *grpcserver.Server
	logs       *logRecorder
	handshakes chan error
	svc        *testService
	serveErr   chan error
	addr       string // the loopback address, for the "tcp" transport
	dial       func(tb testing.TB, creds credentials.TransportCredentials) *grpc.ClientConn
	serverName string
	// listening reports whether the server still accepts connections.
	listening func() bool
}

// start serves the test service over "bufconn" or "tcp" (127.0.0.1:0), built with opts.
func start(tb testing.TB, transport string, opts ...grpcserver.Option) *harness {
	tb.Helper()
	return startWithSource(tb, transport, nil, opts...)
}

// startWithSource is start with options for the server's tlsconfig.Source too.
func startWithSource(tb testing.TB, transport string, srcOpts []tlsconfig.SourceOption, opts ...grpcserver.Option) *harness {
	tb.Helper()
	p := pkitest.New(tb)
	src, err := tlsconfig.NewSource(td, p.Server(tb, serverID).TLSCertificate(), p.Bundle, srcOpts...)
	if err != nil {
		tb.Fatal(err)
	}
	policy, err := authz.ParsePolicy("test.yaml", []byte(testPolicy))
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{
		pki:        p,
		src:        src,
		logs:       &logRecorder{},
		handshakes: make(chan error, 64),
		svc:        &testService{release: make(chan struct{})},
		serveErr:   make(chan error, 1),
	}
	hook := func(err error) {
		select {
		case h.handshakes <- err:
		default:
		}
	}
	h.srv, err = grpcserver.New(src, policy, slog.New(h.logs), append([]grpcserver.Option{grpcserver.WithHandshakeFailureHook(hook)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	h.srv.RegisterService(&testServiceDesc, h.svc)
	identityv1.RegisterIdentityServiceServer(h.srv, whoami.New())

	var lis net.Listener
	switch transport {
	case "bufconn":
		bl := bufconn.Listen(1 << 20)
		lis, h.serverName = bl, "bufnet"
		h.listening = func() bool {
			c, err := bl.Dial()
			if err == nil {
				c.Close()
			}
			return err == nil
		}
		h.dial = func(tb testing.TB, creds credentials.TransportCredentials) *grpc.ClientConn {
			return dial(tb, "passthrough:///bufnet", creds, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				return bl.DialContext(ctx)
			}))
		}
	case "tcp":
		if lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		h.serverName = "localhost"
		addr := lis.Addr().String()
		h.addr = addr
		h.listening = func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		}
		h.dial = func(tb testing.TB, creds credentials.TransportCredentials) *grpc.ClientConn {
			return dial(tb, addr, creds)
		}
	default:
		tb.Fatalf("unknown transport %q", transport)
	}
	go func() { h.serveErr <- h.srv.Serve(lis) }()
	tb.Cleanup(func() { h.srv.GRPC().Stop() })
	return h
}

func dial(tb testing.TB, target string, creds credentials.TransportCredentials, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	cc, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(creds))...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// clientSource returns a client Source presenting cert, trusting the harness's bundle.
func (h *harness) clientSource(tb testing.TB, cert *pki.Leaf) *tlsconfig.Source {
	tb.Helper()
	src, err := tlsconfig.NewSource(td, cert.TLSCertificate(), h.pki.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	return src
}

// connect dials the harness presenting cert.
func (h *harness) connect(tb testing.TB, cert *pki.Leaf) *grpc.ClientConn {
	tb.Helper()
	return h.dial(tb, tlsconfig.ClientCredentials(h.clientSource(tb, cert), h.serverName))
}

// nextHandshakeFailure waits (with a deadline) for the server to report a rejected handshake.
func (h *harness) nextHandshakeFailure(tb testing.TB) error {
	tb.Helper()
	select {
	case err := <-h.handshakes:
		return err
	case <-time.After(10 * time.Second):
		tb.Fatal("the server reported no failed handshake")
		return nil
	}
}

// interceptorRecords counts the log records written by the interceptor chain.
func (h *harness) interceptorRecords() int {
	return len(h.logs.find(map[string]any{"msg": "authz decision"})) + len(h.logs.find(map[string]any{"msg": "finished call"}))
}

// echo calls the unary test method.
func echo(ctx context.Context, cc *grpc.ClientConn, value string, opts ...grpc.CallOption) (*wrapperspb.StringValue, error) {
	out := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, "/test.v1.TestService/Echo", wrapperspb.String(value), out, opts...)
	return out, err
}

// testService is a hand-written gRPC service (no generated code needed): Echo (unary,
// validated, panics on "panic"), Stream (server streaming), Block (unary, waits for release).
type testService struct {
	calls   atomic.Int64
	release chan struct{}
}

// echoRequest is the unary test methods' request: a StringValue on the wire (field 1,
// value) whose descriptor carries a protovalidate rule, as generated code does: value is
// required.
var echoRequest = func() protoreflect.MessageDescriptor {
	opts := &descriptorpb.FieldOptions{}
	proto.SetExtension(opts, validate.E_Field, validate.FieldRules_builder{Required: proto.Bool(true)}.Build())
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:       proto.String("test/v1/echo.proto"),
		Package:    proto.String("test.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"buf/validate/validate.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("EchoRequest"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("value"), JsonName: proto.String("value"), Number: proto.Int32(1),
				Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Options: opts,
			}},
		}},
	}, protoregistry.GlobalFiles)
	if err != nil {
		panic(err)
	}
	return fd.Messages().Get(0)
}()

var testServiceDesc = grpc.ServiceDesc{
	ServiceName: "test.v1.TestService",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Echo", Handler: unaryHandler("Echo", func(s *testService, ctx context.Context, in *wrapperspb.StringValue) (any, error) {
			if in.GetValue() == "panic" {
				panic("boom")
			}
			return in, nil
		})},
		{MethodName: "Admin", Handler: unaryHandler("Admin", func(s *testService, ctx context.Context, in *wrapperspb.StringValue) (any, error) {
			return in, nil
		})},
		{MethodName: "Block", Handler: unaryHandler("Block", func(s *testService, ctx context.Context, in *wrapperspb.StringValue) (any, error) {
			select {
			case <-s.release:
				return in, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})},
	},
	Streams: []grpc.StreamDesc{{
		// Hold sends the request back once, then holds the stream open until it ends.
		StreamName:    "Hold",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			if err := stream.SendMsg(in); err != nil {
				return err
			}
			<-stream.Context().Done()
			return stream.Context().Err()
		},
	}, {
		StreamName:    "Stream",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			s := srv.(*testService)
			s.calls.Add(1)
			in := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			for range 2 {
				if err := stream.SendMsg(in); err != nil {
					return err
				}
			}
			return nil
		},
	}},
}

func unaryHandler(name string, fn func(*testService, context.Context, *wrapperspb.StringValue) (any, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := dynamicpb.NewMessage(echoRequest)
		if err := dec(in); err != nil {
			return nil, err
		}
		s := srv.(*testService)
		handler := func(ctx context.Context, req any) (any, error) {
			s.calls.Add(1)
			value := req.(*dynamicpb.Message).Get(echoRequest.Fields().ByNumber(1)).String()
			return fn(s, ctx, wrapperspb.String(value))
		}
		if interceptor == nil {
			return handler(ctx, in)
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.v1.TestService/" + name}
		return interceptor(ctx, in, info, handler)
	}
}

// logRecorder is a slog.Handler keeping every record for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []map[string]any
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Any()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, m)
	return nil
}

// find returns the records whose attributes include every key/value of want.
func (l *logRecorder) find(want map[string]any) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, r := range l.records {
		match := true
		for k, v := range want {
			if got, ok := r[k]; !ok || !equal(got, v) {
				match = false
				break
			}
		}
		if match {
			out = append(out, r)
		}
	}
	return out
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, ok := b.([]string)
		return ok && slices.Equal(as, bs)
	}
	return a == b
}

// pkiAndPolicy is a test PKI, the server's source from it and a parsed policy.
type pkiAndPolicy struct {
	pki    *pkitest.PKI
	src    *tlsconfig.Source
	policy *authz.Policy
}

// newPKIAndPolicy makes a PKI and a source for serverID, and parses testPolicy.
func newPKIAndPolicy(tb testing.TB) pkiAndPolicy {
	tb.Helper()
	return newPKIAndPolicyFrom(tb, testPolicy)
}

// newPKIAndPolicyFrom is newPKIAndPolicy with policyYAML for the policy.
func newPKIAndPolicyFrom(tb testing.TB, policyYAML string) pkiAndPolicy {
	tb.Helper()
	p := pkitest.New(tb)
	src, err := tlsconfig.NewSource(td, p.Server(tb, serverID).TLSCertificate(), p.Bundle)
	if err != nil {
		tb.Fatal(err)
	}
	policy, err := authz.ParsePolicy("test.yaml", []byte(policyYAML))
	if err != nil {
		tb.Fatal(err)
	}
	return pkiAndPolicy{pki: p, src: src, policy: policy}
}

func newListener(tb testing.TB) net.Listener {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { lis.Close() })
	return lis
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met before the deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
