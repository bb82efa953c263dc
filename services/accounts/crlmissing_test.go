package main

import (
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/pki/pkitest"
)

// TestRootOnlyCRLFreshDatabase is the attack as it was found: the intermediate revoked
// alice, crl.pem holds only the root's CRL, and accounts starts as bin/accounts parses its
// flags, on a fresh database (no CRL history to notice the missing CRL). It used to start
// without a word and accept alice. Now the start warns and alice is refused at the
// handshake; --crl-require-all=false (for a CA that publishes no CRL) accepts her, still
// with the warning.
func TestRootOnlyCRLFreshDatabase(t *testing.T) {
	tests := []struct {
		name         string
		args         []string
		wantAccepted bool
		wantLog      string
	}{
		{name: "defaults", wantLog: "CA has no CRL in --crl: refusing peers under it (crl_missing)"},
		{name: "crl-require-all=false", args: []string{"--crl-require-all=false"}, wantAccepted: true,
			wantLog: "CA has no CRL in --crl: its certificates are not checked for revocation (--crl-require-all=false)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			parsed, err := parseConfig(tt.args, func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			f.cfg.CRLRequireAll = parsed.CRLRequireAll
			alice := f.pki.Client(t, "spiffe://bank.local/customer/alice")
			f.pki.IntermediateCRL(t, alice.Cert) // the intermediate's CRL revoking alice, never deployed
			f.pki.WriteCRL(t, f.pki.SignCRL(t, pkitest.CRLSpec{Issuer: f.pki.Root}))
			dial, logs := f.serve(t, "tcp")

			_, err = identityv1.NewIdentityServiceClient(dial(t, alice)).WhoAmI(t.Context(), &identityv1.WhoAmIRequest{})
			switch {
			case tt.wantAccepted && err != nil:
				t.Fatalf("alice with --crl-require-all=false: %v, want accepted", err)
			case !tt.wantAccepted && status.Code(err) != codes.Unavailable:
				t.Fatalf("revoked alice, her CA's CRL missing: %v, want Unavailable (handshake refused)", err)
			}
			if got := logs.field(t, tt.wantLog, "issuer"); got != f.pki.Intermediate.Cert.Subject.String() {
				t.Errorf("start warning names %q, want the intermediate", got)
			}
		})
	}
}
