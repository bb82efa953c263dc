package cli

import (
	"strings"
	"testing"
)

// TestReconcileUsage: flags that would name one service only, or make no sense,
// are refused before anything is dialed (the end-to-end runs are in
// services/payments TestReconcile).
func TestReconcileUsage(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"--addr", []string{"--addr", "localhost:50051", "reconcile"}, "not --addr or --server-spiffe-id"},
		{"--server-spiffe-id", []string{"--server-spiffe-id", "spiffe://bank.local/service/accounts", "reconcile"}, "not --addr"},
		{"negative settle", []string{"reconcile", "--settle", "-1s"}, "--settle -1s must not be negative"},
		{"foreign payments ID", []string{"reconcile", "--payments-spiffe-id", "spiffe://other.org/payments"}, "--payments-spiffe-id"},
		{"argument", []string{"reconcile", "now"}, "unknown command"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, append([]string{"--as", "auditor"}, tt.args...)...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, want %d with %q\n%s", r.code, ExitUsage, tt.want, r.stderr)
			}
		})
	}
}
