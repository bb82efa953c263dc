package grpcserver_test

import (
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"mtlsbank/internal/grpcserver"
)

const aliceCustomer = "spiffe://bank.local/customer/alice"

// TestHTTP2Abuse runs the HTTP/2-level attacks of docs/security.md against a real server
// over loopback mutual TLS, each bounded in frames and time, and checks what the server
// keeps: its heap and goroutines stay within the per-connection bound, and another
// client still gets its call through.
func TestHTTP2Abuse(t *testing.T) {
	const heapBound = 8 << 20
	tests := []struct {
		name string
		// attack runs against c and returns what the server answered, for the log.
		attack func(tb testing.TB, h *harness, c *h2conn) string
	}{
		{name: "rapid reset", attack: func(tb testing.TB, h *harness, c *h2conn) string {
			// HEADERS then RST_STREAM at once, 5000 times: CVE-2023-44487. grpc-go
			// runs at most MaxConcurrentStreams handlers per connection at once, so
			// the resets cost the server parsing, not goroutines.
			block := c.headerBlock(tb, "/test.v1.TestService/Block", 0)
			for i := range 5000 {
				id := uint32(2*i + 1)
				if err := c.writeHeaders(id, block); err != nil {
					return "hung up: " + err.Error()
				}
				if err := c.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
					return "hung up: " + err.Error()
				}
			}
			seen, gone := c.sync(tb)
			return describe(seen, gone)
		}},
		{name: "SETTINGS flood without reading", attack: func(tb testing.TB, h *harness, c *h2conn) string {
			// Every SETTINGS needs an ACK; a client that never reads makes the
			// server queue them. grpc-go stops reading from such a connection once
			// 50 responses are queued, so the flood stalls on TCP backpressure.
			return floodUnread(tb, c, func() error {
				return c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
			})
		}},
		{name: "PING flood without reading", attack: func(tb testing.TB, h *harness, c *h2conn) string {
			return floodUnread(tb, c, func() error { return c.fr.WritePing(false, [8]byte{1}) })
		}},
		{name: "PING flood", attack: func(tb testing.TB, h *harness, c *h2conn) string {
			// Keepalive enforcement: more than two pings within the minimum interval
			// (30s) is a GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
			for range 10 {
				if err := c.fr.WritePing(false, [8]byte{2}); err != nil {
					break
				}
			}
			goaway := readUntilGoAway(tb, c)
			if goaway == nil || goaway.ErrCode != http2.ErrCodeEnhanceYourCalm || string(goaway.DebugData()) != "too_many_pings" {
				tb.Errorf("after a ping flood the server sent %v, want GOAWAY ENHANCE_YOUR_CALM too_many_pings", goaway)
			}
			return "GOAWAY too_many_pings"
		}},
		{name: "huge WINDOW_UPDATE", attack: func(tb testing.TB, h *harness, c *h2conn) string {
			// Increments that overflow the 2^31-1 window (a FLOW_CONTROL_ERROR by
			// RFC 9113): grpc-go does not check, and only lets the server send this
			// peer more than it can take: the peer harms itself.
			for range 3 {
				if err := c.fr.WriteWindowUpdate(0, 1<<31-1); err != nil {
					return "hung up: " + err.Error()
				}
			}
			seen, gone := c.sync(tb)
			return describe(seen, gone)
		}},
		{name: "zero window, responses never read", attack: func(tb testing.TB, h *harness, c *h2conn) string {
			// SETTINGS_INITIAL_WINDOW_SIZE 0: the server may not send any response
			// DATA. Each stream's pending response is held to grpc-go's write quota
			// (64 KiB) and its handler blocks; MaxConcurrentStreams bounds them.
			if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
				return "hung up: " + err.Error()
			}
			block := c.headerBlock(tb, "/test.v1.TestService/Echo", 0)
			msg := grpcMessage(tb, 3<<10)
			for i := range grpcserver.DefaultMaxConcurrentStreams {
				id := uint32(2*i + 1)
				if err := c.writeHeaders(id, block); err != nil {
					return "hung up: " + err.Error()
				}
				if err := c.fr.WriteData(id, true, msg); err != nil {
					return "hung up: " + err.Error()
				}
			}
			seen, gone := c.sync(tb)
			return describe(seen, gone)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, "tcp")
			c := h.rawH2(t, aliceCustomer)
			if _, gone := c.sync(t); gone {
				t.Fatal("the server hung up before the attack")
			}
			heap0, g0 := heapInUse(), runtime.NumGoroutine()
			outcome := tt.attack(t, h, c)
			heapGrowth, gGrowth := int64(heapInUse())-int64(heap0), runtime.NumGoroutine()-g0
			t.Logf("outcome: %s; heap %+d KiB, goroutines %+d", outcome, heapGrowth>>10, gGrowth)
			if heapGrowth > heapBound {
				t.Errorf("the server heap grew by %d MiB, want under %d MiB", heapGrowth>>20, heapBound>>20)
			}
			if limit := 2*grpcserver.DefaultMaxConcurrentStreams + 20; gGrowth > limit {
				t.Errorf("%d more goroutines, want at most %d", gGrowth, limit)
			}
			if _, err := echo(t.Context(), h.connect(t, h.pki.Client(t, "spiffe://bank.local/customer/bob")), "bystander"); err != nil {
				t.Errorf("another client during the attack: %v", err)
			}
		})
	}
}

// floodUnread writes frames with write until the server stops reading (the write times
// out on TCP backpressure) or 200,000 are sent, never reading the answers.
func floodUnread(tb testing.TB, c *h2conn, write func() error) string {
	tb.Helper()
	if err := c.tls.SetWriteDeadline(time.Now().Add(3 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	for i := range 200_000 {
		if err := write(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "the server stopped reading after " + itoa(i) + " frames"
			}
			return "hung up after " + itoa(i) + " frames: " + err.Error()
		}
	}
	return "all 200000 frames written"
}

// readUntilGoAway reads frames until a GOAWAY, EOF or a deadline.
func readUntilGoAway(tb testing.TB, c *h2conn) *http2.GoAwayFrame {
	tb.Helper()
	if err := c.tls.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return nil
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return g
		}
	}
}

func describe(seen map[string]int, gone bool) string {
	if gone {
		return "the server hung up; before that: " + fmtMap(seen)
	}
	return "connection open; the server answered " + fmtMap(seen)
}
