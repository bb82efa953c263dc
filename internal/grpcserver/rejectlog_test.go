package grpcserver_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

// TestHandshakeRejectionLogLimit: a client looping on handshakes without a certificate
// gets every rejection counted in bank_tls_handshake_failures_total, but only the first
// few of each interval logged; the others are summed up in one line per interval, so
// logged lines plus summary counts account for every rejection. The control shows the
// unlimited log (what main did): one line per rejection.
func TestHandshakeRejectionLogLimit(t *testing.T) {
	const attempts = 8
	tests := []struct {
		name      string
		burst     int
		interval  time.Duration
		wantLines int // -1: at least burst, with summaries accounting for the rest
	}{
		{name: "one window", burst: 3, interval: time.Hour, wantLines: 3},
		{name: "windows ending", burst: 3, interval: 200 * time.Millisecond, wantLines: -1},
		{name: "no limit (control)", burst: 0, interval: time.Hour, wantLines: attempts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := telemetry.NewMetrics()
			h := start(t, "tcp", grpcserver.WithMetrics(m), grpcserver.WithHandshakeLogLimit(tt.burst, tt.interval))
			noCert := func(tb testing.TB) credentials.TransportCredentials {
				cfg := tlsconfig.ClientConfig(h.clientSource(tb, h.pki.Client(tb, "spiffe://bank.local/customer/alice")), h.serverName)
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
				return credentials.NewTLS(cfg)
			}
			for i := range attempts {
				cc := h.dial(t, noCert(t))
				if _, err := echo(context.Background(), cc, "hello"); err == nil {
					t.Fatalf("attempt %d: a call without a certificate succeeded", i)
				}
				cc.Close()
				if got := tlsconfig.FailureReason(h.nextHandshakeFailure(t)); got != tlsconfig.ReasonNoCertificate {
					t.Fatalf("attempt %d rejected as %q, want %q", i, got, tlsconfig.ReasonNoCertificate)
				}
			}
			lines := func() int {
				return len(h.logs.find(map[string]any{"msg": "TLS handshake rejected", "reason": tlsconfig.ReasonNoCertificate}))
			}
			summarized := func() int {
				n := 0
				for _, r := range h.logs.find(map[string]any{"msg": "TLS handshake rejections not logged", "reason": tlsconfig.ReasonNoCertificate}) {
					c, _ := r["count"].(int64)
					if c <= 0 {
						t.Errorf("summary %v counts %d", r, c)
					}
					n += int(c)
				}
				return n
			}
			if v := counterValue(t, m, "bank_tls_handshake_failures_total", map[string]string{"reason": tlsconfig.ReasonNoCertificate}); v != attempts {
				t.Errorf("bank_tls_handshake_failures_total{reason=no_certificate} = %v, want %d", v, attempts)
			}
			switch {
			case tt.wantLines >= 0:
				if got := lines(); got != tt.wantLines {
					t.Errorf("%d rejection lines, want %d", got, tt.wantLines)
				}
				if got := summarized(); got != 0 {
					t.Errorf("summaries count %d before their window ended", got)
				}
			default:
				waitFor(t, func() bool { return lines()+summarized() == attempts })
				if got := lines(); got < tt.burst {
					t.Errorf("%d rejection lines, want at least the burst %d", got, tt.burst)
				}
			}
		})
	}
}
