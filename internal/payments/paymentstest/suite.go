// Package paymentstest is the conformance suite of payments.Store: one set of
// tests, run against every store (SQLite and PostgreSQL), of what the stores
// promise through payments.Orders and the payments service: idempotency per
// creator, the first outcome wins, listing and paging, the rolling customer limit
// under concurrency and across processes, leases and recovery by several
// processes at once, and the settlement of a revoked creator's orders.
package paymentstest

import (
	"context"
	"testing"
	"time"

	"mtlsbank/internal/payments"
)

// Stores opens the stores under test.
type Stores struct {
	// New returns a store on a new, empty database, closed when the test ends.
	New func(tb testing.TB) payments.Store
	// Replicas returns n stores on one new, empty database, each with its own
	// connections as n payments processes would have, all closed when the test
	// ends.
	Replicas func(tb testing.TB, n int) []payments.Store
	// Unbatched, if not nil, returns a store on a new database that commits each
	// write in a transaction of its own, for a store that otherwise groups them.
	Unbatched func(tb testing.TB) payments.Store
}

// suite runs the tests against one kind of store.
type suite struct{ stores Stores }

// Run runs every test of the suite against the stores, each as a subtest.
func Run(t *testing.T, stores Stores) {
	if stores.New == nil || stores.Replicas == nil {
		t.Fatal("paymentstest: Stores needs New and Replicas")
	}
	su := suite{stores: stores}
	for _, tt := range []struct {
		name string
		test func(*testing.T)
	}{
		// The store's promises, through Orders.
		{"CreateIsIdempotentPerCreator", su.testCreateIsIdempotentPerCreator},
		{"FirstOutcomeWins", su.testFirstOutcomeWins},
		{"RefusesBadOutcomes", su.testRefusesBadOutcomes},
		{"ListPagesAndFilters", su.testListPagesAndFilters},
		{"CreateAnswersWhatItStored", su.testCreateAnswersWhatItStored},
		{"ConcurrentWrites", su.testConcurrentWrites},
		{"Leases", su.testLeases},
		// The payments service on the store.
		{"DailyLimitHoldsUnderConcurrency", su.testDailyLimitHoldsUnderConcurrency},
		{"DailyLimitWindow", su.testDailyLimitWindow},
		{"PerPaymentLimitDetail", su.testPerPaymentLimitDetail},
		{"PendingOrderOfRevokedCreator", su.testPendingOrderOfRevokedCreator},
		{"CreatorCertificateIsRecorded", su.testCreatorCertificateIsRecorded},
		{"RevokedCreatorVoidsTransferKey", su.testRevokedCreatorVoidsTransferKey},
		{"VoidedKeyFailsAsRevoked", su.testVoidedKeyFailsAsRevoked},
		// Several payments processes on one database.
		{"RollingLimitAcrossReplicas", su.testRollingLimitAcrossReplicas},
		{"DailyLimitAcrossReplicas", su.testDailyLimitAcrossReplicas},
		{"ClaimAcrossReplicas", su.testClaimAcrossReplicas},
		{"RecoveryAcrossReplicas", su.testRecoveryAcrossReplicas},
		{"RecoveryAfterALeaseExpires", su.testRecoveryAfterALeaseExpires},
	} {
		t.Run(tt.name, tt.test)
	}
}

// newOrders returns Orders on a store on a new database.
func (su suite) newOrders(tb testing.TB, now func() time.Time) *payments.Orders {
	tb.Helper()
	return payments.NewOrders(su.stores.New(tb), now)
}

// variant is a way to open the store under test.
type variant struct {
	name string
	open func(testing.TB) payments.Store
}

// variants are the ways the store runs: as it is, and unbatched if it batches.
func (su suite) variants() []variant {
	vs := []variant{{"default", su.stores.New}}
	if su.stores.Unbatched != nil {
		vs = append(vs, variant{"one write per transaction", su.stores.Unbatched})
	}
	return vs
}

// Lister is what ListIDs and usedBy read from: a Store or Orders.
type Lister interface {
	List(ctx context.Context, q payments.Query) ([]payments.Payment, error)
}
