package roundrobin_test

import (
	"strings"
	"testing"

	"mtlsbank/internal/roundrobin"
)

func TestTarget(t *testing.T) {
	tests := []struct {
		name     string
		addrs    string
		target   string // "" for an error
		resolver bool   // a resolver of the connection's own
		wantErr  string
	}{
		{name: "one address", addrs: "localhost:50051", target: "dns:///localhost:50051"},
		{name: "one IP", addrs: "127.0.0.1:50051", target: "dns:///127.0.0.1:50051"},
		{name: "one IPv6", addrs: "[::1]:50051", target: "dns:///[::1]:50051"},
		{name: "a target", addrs: "dns:///accounts.bank.internal:443", target: "dns:///accounts.bank.internal:443"},
		{name: "a list", addrs: "127.0.0.1:50051, 127.0.0.1:50061", target: "replicas:///replicas", resolver: true},
		{name: "no port", addrs: "localhost", wantErr: `"localhost": want host:port`},
		{name: "no host", addrs: ":50051", wantErr: "no host"},
		{name: "port zero", addrs: "localhost:0", wantErr: "port"},
		{name: "empty element", addrs: "a:1,", wantErr: "empty address"},
		{name: "duplicate", addrs: "a:1,a:1", wantErr: "listed twice"},
		{name: "target in a list", addrs: "a:1,dns:///b:2", wantErr: "not targets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, opts, err := roundrobin.Target(tt.addrs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Target(%q) = %q, %v; want an error with %q", tt.addrs, target, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Target(%q): %v", tt.addrs, err)
			}
			if target != tt.target || (len(opts) > 0) != tt.resolver {
				t.Errorf("Target(%q) = %q with %d options, want %q (resolver %v)", tt.addrs, target, len(opts), tt.target, tt.resolver)
			}
		})
	}
}
