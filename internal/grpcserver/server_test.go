package grpcserver_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/tlsconfig"
)

// TestChain drives each link of the interceptor chain through a real mTLS connection.
func TestChain(t *testing.T) {
	h := start(t, "bufconn")
	alice := h.pki.Client(t, "spiffe://bank.local/customer/alice")
	aliceCC := h.connect(t, alice)
	internCC := h.connect(t, h.pki.Client(t, "spiffe://bank.local/intern/ivan"))
	ctx := context.Background()
	onBehalf := metadata.AppendToOutgoingContext(ctx, authz.OnBehalfOfKey, "spiffe://bank.local/teller/tina")

	tests := []struct {
		name        string
		cc          *grpc.ClientConn
		ctx         context.Context
		method      string
		value       string
		code        codes.Code
		handlerRuns bool
		msg         string // in the status message
		audit       string // decision in the audit record, "" for none
	}{
		{name: "allowed", cc: aliceCC, method: "Echo", value: "hi", code: codes.OK, handlerRuns: true, audit: "allow"},
		{name: "no role", cc: internCC, method: "Echo", value: "hi", code: codes.PermissionDenied, msg: "permission denied", audit: "deny"},
		{name: "role without the method", cc: aliceCC, method: "Admin", value: "hi", code: codes.PermissionDenied, audit: "deny"},
		{name: "delegation from a customer", cc: aliceCC, ctx: onBehalf, method: "Echo", value: "hi", code: codes.PermissionDenied, audit: "deny"},
		{name: "invalid request", cc: aliceCC, method: "Echo", value: "", code: codes.InvalidArgument, msg: "value", audit: "allow"},
		{name: "invalid request from a stranger is denied first", cc: internCC, method: "Echo", value: "", code: codes.PermissionDenied, audit: "deny"},
		{name: "panic", cc: aliceCC, method: "Echo", value: "panic", code: codes.Internal, handlerRuns: true, msg: "internal error", audit: "allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ctx == nil {
				tt.ctx = ctx
			}
			before := h.svc.calls.Load()
			audits := len(h.logs.find(map[string]any{"msg": "authz decision"}))
			err := tt.cc.Invoke(tt.ctx, "/test.v1.TestService/"+tt.method, wrapperspb.String(tt.value), new(wrapperspb.StringValue))
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
				t.Fatalf("status = %v %q, want %v containing %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
			if ran := h.svc.calls.Load() != before; ran != tt.handlerRuns {
				t.Errorf("handler ran = %v, want %v", ran, tt.handlerRuns)
			}
			recs := h.logs.find(map[string]any{"msg": "authz decision"})
			if len(recs) != audits+1 {
				t.Fatalf("%d audit records, want exactly one more", len(recs)-audits)
			}
			if got := recs[len(recs)-1]["decision"]; got != tt.audit {
				t.Errorf("audit decision = %v, want %s", got, tt.audit)
			}
		})
	}

	t.Run("audit record content", func(t *testing.T) {
		recs := h.logs.find(map[string]any{"msg": "authz decision", "spiffe_id": "spiffe://bank.local/intern/ivan", "decision": "deny"})
		if len(recs) == 0 {
			t.Fatal("no audit record of the intern's denial")
		}
		r := recs[0]
		for _, k := range []string{"method", "rule", "peer", "serial", "roles", "code"} {
			if r[k] == nil || r[k] == "" {
				if k == "roles" {
					continue // the intern has no role: nil is its roles
				}
				t.Errorf("audit record lacks %q: %v", k, r)
			}
		}
		if r["code"] != "PermissionDenied" {
			t.Errorf("audit code = %v", r["code"])
		}
	})
	t.Run("panic logged with stack", func(t *testing.T) {
		recs := h.logs.find(map[string]any{"msg": "panic in gRPC call", "panic": "boom"})
		if len(recs) != 1 || !strings.Contains(recs[0]["stack"].(string), "goroutine") {
			t.Fatalf("panic records = %v", recs)
		}
	})
	t.Run("stream", func(t *testing.T) {
		desc := &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true}
		for _, c := range []struct {
			cc   *grpc.ClientConn
			code codes.Code
			want int
		}{{aliceCC, codes.OK, 2}, {internCC, codes.PermissionDenied, 0}} {
			s, err := c.cc.NewStream(ctx, desc, "/test.v1.TestService/Stream")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SendMsg(wrapperspb.String("x")); err != nil {
				t.Fatal(err)
			}
			if err := s.CloseSend(); err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				err = s.RecvMsg(new(wrapperspb.StringValue))
				if err != nil {
					break
				}
				n++
			}
			if !errors.Is(err, io.EOF) && status.Code(err) != c.code || n != c.want {
				t.Errorf("stream: %d messages, err %v; want %d, %v", n, err, c.want, c.code)
			}
		}
	})
	t.Run("whoami", func(t *testing.T) {
		resp, err := identityv1.NewIdentityServiceClient(aliceCC).WhoAmI(ctx, &identityv1.WhoAmIRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetSpiffeId() != "spiffe://bank.local/customer/alice" || len(resp.GetRoles()) != 1 || resp.GetRoles()[0] != "customer" ||
			resp.GetSerial() != pki.SerialHex(alice.Cert.SerialNumber) || !resp.GetNotAfter().AsTime().Equal(alice.Cert.NotAfter) ||
			len(resp.GetFingerprintSha256()) != 64 || !strings.Contains(resp.GetSubject(), "CN=alice") {
			t.Errorf("WhoAmI = %v", resp)
		}
	})
	t.Run("health and reflection for any bank identity", func(t *testing.T) {
		hr, err := healthpb.NewHealthClient(internCC).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health = %v, %v", hr, err)
		}
		rc, err := reflectionv1.NewServerReflectionClient(internCC).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := rc.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !strings.Contains(strings.Join(names, " "), "bank.identity.v1.IdentityService") {
			t.Errorf("reflection lists %v", names)
		}
	})
}

// TestRevocationReachesOpenConnections: revoking a certificate fails the next RPC on a
// connection that was accepted before the revocation.
func TestRevocationReachesOpenConnections(t *testing.T) {
	h := start(t, "bufconn")
	alice := h.pki.Client(t, "spiffe://bank.local/customer/alice")
	cc := h.connect(t, alice)
	if _, err := echo(context.Background(), cc, "before"); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	crl, err := tlsconfig.ParseCRL(h.pki.CRL(t, alice.Cert), h.src.CRLIssuers())
	if err != nil {
		t.Fatal(err)
	}
	h.src.SetCRL(crl)
	before := h.svc.calls.Load()
	_, err = echo(context.Background(), cc, "after")
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("after revocation: %v, want Unauthenticated", err)
	}
	if h.svc.calls.Load() != before {
		t.Error("the handler ran for a revoked caller")
	}
	if recs := h.logs.find(map[string]any{"msg": "authz decision", "code": "Unauthenticated"}); len(recs) != 1 || !strings.Contains(recs[0]["rule"].(string), "revoked") {
		t.Errorf("audit records = %v", recs)
	}
}

// TestServeRefusesUncoveredMethods: a service registering a method no role grants does not start.
func TestServeRefusesUncoveredMethods(t *testing.T) {
	p := newPKIAndPolicy(t)
	srv, err := grpcserver.New(p.src, p.policy, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.RegisterService(&testServiceDesc, &testService{})
	uncovered := testServiceDesc
	uncovered.ServiceName = "test.v1.Unprotected"
	srv.RegisterService(&uncovered, &testService{})
	lis := newListener(t)
	err = srv.Serve(lis)
	if !errors.Is(err, authz.ErrUncoveredMethods) {
		t.Fatalf("Serve() = %v, want ErrUncoveredMethods", err)
	}
	for _, m := range []string{"/test.v1.Unprotected/Admin", "/test.v1.Unprotected/Echo", "/test.v1.Unprotected/Block", "/test.v1.Unprotected/Stream"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not name %s", err, m)
		}
	}
	if _, err := lis.Accept(); err == nil {
		t.Error("the listener was left open")
	}
}

// TestShutdownDrains: Shutdown stops accepting at once but lets an in-flight call finish.
func TestShutdownDrains(t *testing.T) {
	h := start(t, "bufconn")
	cc := h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/alice"))
	if _, err := echo(context.Background(), cc, "warm-up"); err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan error, 1)
	before := h.svc.calls.Load()
	go func() {
		inFlight <- cc.Invoke(context.Background(), "/test.v1.TestService/Block", wrapperspb.String("x"), new(wrapperspb.StringValue))
	}()
	waitFor(t, func() bool { return h.svc.calls.Load() > before })

	shutdown := make(chan struct{})
	go func() {
		h.srv.Shutdown(context.Background())
		close(shutdown)
	}()
	waitFor(t, func() bool { return !h.listening() })
	select {
	case <-shutdown:
		t.Fatal("Shutdown returned with a call in flight")
	case err := <-inFlight:
		t.Fatalf("the in-flight call ended early: %v", err)
	default:
	}
	close(h.svc.release)
	if err := <-inFlight; err != nil {
		t.Fatalf("in-flight call: %v", err)
	}
	<-shutdown
	if err := <-h.serveErr; err != nil {
		t.Fatalf("Serve() after Shutdown = %v, want nil", err)
	}
}

func TestNewRejectsTrustDomainMismatch(t *testing.T) {
	p := newPKIAndPolicy(t)
	other, err := authz.ParsePolicy("other.yaml", []byte(strings.Replace(testPolicy, "trust_domain: bank.local", "trust_domain: other.example", 1)))
	if err == nil {
		_, err = grpcserver.New(p.src, other, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "trust domain") {
		t.Fatalf("New() with a foreign policy = %v", err)
	}
}
