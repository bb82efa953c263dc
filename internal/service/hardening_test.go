package service_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mtlsbank/internal/tlsconfig"
)

// TestSilentClientsAreDropped: a TCP client that never starts the TLS handshake, and one
// that completes it but never speaks HTTP/2, are both disconnected by the server once
// the handshake timeout has passed. The read deadline is only a backstop: the assertion
// is that the server closed the connection (EOF), not how fast.
func TestSilentClientsAreDropped(t *testing.T) {
	f := newFixture(t)
	f.cfg.HandshakeTimeout = 300 * time.Millisecond
	r := f.start(t)
	alice := f.pki.Client(t, aliceID)
	tests := []struct {
		name    string
		connect func(tb testing.TB) net.Conn
	}{
		{name: "no TLS handshake", connect: func(tb testing.TB) net.Conn {
			c, err := net.Dial("tcp", r.addr)
			if err != nil {
				tb.Fatal(err)
			}
			return c
		}},
		{name: "TLS but no HTTP/2 preface", connect: func(tb testing.TB) net.Conn {
			src, err := tlsconfig.NewSource(td, alice.TLSCertificate(), f.pki.Bundle)
			if err != nil {
				tb.Fatal(err)
			}
			c, err := tls.Dial("tcp", r.addr, tlsconfig.ClientConfig(src, "localhost"))
			if err != nil {
				tb.Fatal(err)
			}
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.connect(t)
			defer c.Close()
			if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
				t.Fatal(err)
			}
			_, err := io.Copy(io.Discard, c) // the server's settings frame, then EOF
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server kept a silent connection open for %v", waitLimit)
			}
		})
	}
	waitFor(t, "the timed-out handshake to be counted", func() bool {
		v, _ := r.metric(t, "bank_tls_handshake_failures_total", map[string]string{"reason": tlsconfig.ReasonTimeout})
		return v >= 1
	})
	if _, err := call(r.dial(t, alice)); err != nil {
		t.Fatalf("a real client after the silent ones: %v", err)
	}
}

// TestRateLimit: an identity over its rate gets ResourceExhausted without reaching the
// handler, and gets through again once its bucket refills; other identities are not
// affected, an exempt one is never limited, and a caller hammering a method it is denied
// is throttled too (the limiter runs before authorization).
func TestRateLimit(t *testing.T) {
	f := newFixture(t)
	f.cfg.RateLimit, f.cfg.RateBurst = 2, 2 // a token every 500ms
	if err := f.cfg.RateLimitExempt.Set(tellerID); err != nil {
		t.Fatal(err)
	}
	r := f.start(t)
	aliceCC := r.dial(t, f.pki.Client(t, aliceID))

	// exhaust calls until the limiter answers (the burst is 2, so within a few calls) and
	// checks that the limited call did not reach the handler.
	exhaust := func(tb testing.TB, cc *grpc.ClientConn, otherwise codes.Code) {
		tb.Helper()
		for i := 0; i < 50; i++ {
			handled := r.svc.calls.Load()
			_, err := call(cc)
			switch status.Code(err) {
			case codes.ResourceExhausted:
				if !strings.Contains(err.Error(), "rate limit exceeded") {
					tb.Errorf("ResourceExhausted message %q does not say why", err)
				}
				if r.svc.calls.Load() != handled {
					tb.Error("a rate-limited call reached the handler")
				}
				return
			case otherwise:
			default:
				tb.Fatalf("call %d: %v, want %v until ResourceExhausted", i, err, otherwise)
			}
		}
		tb.Fatal("50 calls in a row were never rate limited")
	}
	exhaust(t, aliceCC, codes.OK)

	if _, err := call(r.dial(t, f.pki.Client(t, bobID))); err != nil {
		t.Errorf("bob while alice is limited: %v", err)
	}
	tellerCC := r.dial(t, f.pki.Client(t, tellerID))
	for i := range 20 {
		if _, err := call(tellerCC); err != nil {
			t.Fatalf("exempt teller, call %d: %v", i, err)
		}
	}
	internCC := r.dial(t, f.pki.Client(t, internID))
	exhaust(t, internCC, codes.PermissionDenied)

	waitFor(t, "alice's bucket to refill", func() bool { _, err := call(aliceCC); return err == nil })
	if v, _ := r.metric(t, "grpc_server_handled_total", map[string]string{"grpc_method": "Echo", "grpc_code": "ResourceExhausted"}); v < 2 {
		t.Errorf("grpc_server_handled_total{grpc_code=ResourceExhausted} = %v, want the limited calls counted", v)
	}
}

// TestMessageSizeLimit: a request over --max-recv-msg-size is refused before any handler.
func TestMessageSizeLimit(t *testing.T) {
	f := newFixture(t)
	f.cfg.MaxRecvMsgSize = 1 << 10
	r := f.start(t)
	cc := r.dial(t, f.pki.Client(t, aliceID))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err := cc.Invoke(ctx, echo, wrapperspb.String(strings.Repeat("x", 2<<10)), new(wrapperspb.StringValue))
	if status.Code(err) != codes.ResourceExhausted || r.svc.calls.Load() != 0 {
		t.Fatalf("2 KiB request with a 1 KiB limit: %v (handler calls %d), want ResourceExhausted", err, r.svc.calls.Load())
	}
	if err := cc.Invoke(ctx, echo, wrapperspb.String("small"), new(wrapperspb.StringValue)); err != nil {
		t.Fatalf("small request: %v", err)
	}
}
