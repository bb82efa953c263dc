package bench

import (
	"fmt"
	"os"
	"testing"

	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
)

// DecisionCost is the measured cost of one authorization decision.
type DecisionCost struct {
	Case        string
	NsPerOp     float64   // the median of Rounds
	Rounds      []float64 // ns/op of each round, in the order run
	AllocsPerOp int64     // of the last round
	BytesPerOp  int64
}

// authz measures Policy.Decide on the accounts policy with testing.Benchmark (the same
// machinery as `go test -bench`): the call every RPC makes, and a delegated transfer, in
// cfg.Rounds rounds of about a second each, the median reported as the other targets'
// are (one second of a shared machine moved it from 128 to 231 ns); then the hand-off of
// an audit record to the sink (auditlog.MeasureHandOff).
func (h *harness) authz() error {
	h.progress("measuring the authorization decision")
	data, err := os.ReadFile(h.cfg.AccountsPolicy)
	if err != nil {
		return err
	}
	policy, err := authz.ParsePolicy(h.cfg.AccountsPolicy, data)
	if err != nil {
		return err
	}
	m, err := newMaterial(pki.ECDSAP256)
	if err != nil {
		return err
	}
	ident := func(spiffeID string) (identity.Identity, error) {
		leaf, err := m.client(spiffeID)
		if err != nil {
			return identity.Identity{}, err
		}
		return identity.FromCertificate(leaf.Cert, trustDomain)
	}
	alice, err := ident(aliceID)
	if err != nil {
		return err
	}
	payments, err := ident(paymentsID)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		name       string
		id         identity.Identity
		method     string
		onBehalfOf []string
	}{
		{"customer GetAccount", alice, "/bank.accounts.v1.AccountsService/GetAccount", nil},
		{"payments Transfer for a customer", payments, "/bank.accounts.v1.AccountsService/Transfer", []string{aliceID}},
	} {
		if d := policy.Decide(c.id, c.method, c.onBehalfOf...); !d.Allowed {
			return fmt.Errorf("authz %s denied: %s", c.name, d.Rule)
		}
		cost := DecisionCost{Case: c.name}
		for range h.cfg.Rounds {
			r := testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					policy.Decide(c.id, c.method, c.onBehalfOf...)
				}
			})
			if r.N == 0 {
				return fmt.Errorf("authz %s: the benchmark did not run", c.name)
			}
			cost.Rounds = append(cost.Rounds, float64(r.T.Nanoseconds())/float64(r.N))
			cost.AllocsPerOp, cost.BytesPerOp = r.AllocsPerOp(), r.AllocedBytesPerOp()
		}
		cost.NsPerOp = median(cost.Rounds)
		h.res.Decisions = append(h.res.Decisions, cost)
	}
	h.progress("measuring the audit record hand-off")
	cost, err := auditlog.MeasureHandOff(h.cfg.Dir, 200000)
	if err != nil {
		return fmt.Errorf("audit hand-off: %w", err)
	}
	h.res.Audit = &cost
	return nil
}
