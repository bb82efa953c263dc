package authz_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"mtlsbank/internal/authz"
)

// FuzzParsePolicy: any input is either a valid policy or a clear error naming the input;
// never a panic.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(testPolicy))
	for _, path := range []string{"../../services/accounts/policy.yaml", "../../services/payments/policy.yaml"} {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(""))
	f.Add([]byte("trust_domain: bank.local\nidentities: [{name: x, match: {spiffe_id_glob: '['}, roles: [y]}]\n"))
	f.Add([]byte("trust_domain: bank.local\nroles: {r: {methods: ['/a.B/*'], scope: any, delegate: true}}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("trust_domain: bank.local\nroles: {d: {delegate: true, methods: ['/a.B/C']}, u: {on_behalf: {scope: any, methods: ['/a.B/*']}}}\n"))
	f.Add([]byte("trust_domain: bank.local\nidentities: [{name: x, match: {spiffe_id_prefix: 'spiffe://bank.local/x'}, roles: [y]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := authz.ParsePolicy("fuzz.yaml", data)
		if err != nil {
			var le *authz.LineError
			if !errors.As(err, &le) || !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q is not a LineError naming the file", err)
			}
			return
		}
		if p.TrustDomain().IsZero() {
			t.Fatal("accepted a policy without a trust domain")
		}
	})
}
