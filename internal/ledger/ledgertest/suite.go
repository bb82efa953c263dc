package ledgertest

import (
	"testing"

	"mtlsbank/internal/ledger"
)

// Stores opens the stores under test.
type Stores struct {
	// New returns a store on a new, empty database, closed when the test ends.
	New func(tb testing.TB) ledger.Store
	// Replicas returns n stores on one new, empty database, each with its own
	// connections as n processes (replicas of the service) would have, all
	// closed when the test ends.
	Replicas func(tb testing.TB, n int) []ledger.Store
}

// suite runs the tests against one kind of store.
type suite struct{ stores Stores }

// Run runs every test of the suite against the stores, each as a subtest.
func Run(t *testing.T, stores Stores) {
	if stores.New == nil || stores.Replicas == nil {
		t.Fatal("ledgertest: Stores needs New and Replicas")
	}
	su := suite{stores: stores}
	for _, tt := range []struct {
		name string
		test func(*testing.T)
	}{
		// The store's own contract.
		{"Savepoint", su.testSavepoint},
		{"UpdateRollsBack", su.testUpdateRollsBack},
		{"DuplicateKey", su.testDuplicateKey},
		{"AllocateSequencesGapFree", su.testAllocateSequencesGapFree},
		{"TransactionRoundTrip", su.testTransactionRoundTrip},
		// The ledger's promises, on the store.
		{"OpenAccount", su.testOpenAccount},
		{"GetAccount", su.testGetAccount},
		{"CheckOwner", su.testCheckOwner},
		{"ListAccounts", su.testListAccounts},
		{"ListAccountsPageSizeBounds", su.testListAccountsPageSizeBounds},
		{"IdempotentReplay", su.testIdempotentReplay},
		{"IdempotencyMismatch", su.testIdempotencyMismatch},
		{"RefusalStaysRefused", su.testRefusalStaysRefused},
		{"ValidationIsNotRecorded", su.testValidationIsNotRecorded},
		{"IdempotencyScope", su.testIdempotencyScope},
		{"ConcurrentDuplicates", su.testConcurrentDuplicates},
		{"OneDepositCannotBlockACurrency", su.testOneDepositCannotBlockACurrency},
		{"SupplyCapReached", su.testSupplyCapReached},
		{"LimitsAtTheCeiling", su.testLimitsAtTheCeiling},
		{"LoweredSupplyCap", su.testLoweredSupplyCap},
		{"BalancesNeverOverflow", su.testBalancesNeverOverflow},
		{"ConcurrencyProperty", su.testConcurrencyProperty},
		{"MoneyMovement", su.testMoneyMovement},
		{"GetTransactionRefusals", su.testGetTransactionRefusals},
		{"ListTransactions", su.testListTransactions},
		{"Refusals", su.testRefusals},
		{"VoidUnknownKey", su.testVoidUnknownKey},
		{"VoidReplaysOutcome", su.testVoidReplaysOutcome},
		{"VoidIgnoresAmountLimit", su.testVoidIgnoresAmountLimit},
		{"VoidRacesOriginal", su.testVoidRacesOriginal},
		{"Watch", su.testWatch},
		{"WatchStalledConsumer", su.testWatchStalledConsumer},
		{"WatchEnds", su.testWatchEnds},
		// Several ledgers (replicas) on one database.
		{"Replicas", su.testReplicas},
		{"ReplicasSupplyCap", su.testReplicasSupplyCap},
		{"ReplicasWatch", su.testReplicasWatch},
	} {
		t.Run(tt.name, tt.test)
	}
}

// newStore is a store on a new database.
func (su suite) newStore(tb testing.TB) ledger.Store {
	tb.Helper()
	return su.stores.New(tb)
}

// newLedger returns a ledger on a new store.
func (su suite) newLedger(tb testing.TB, opts ...ledger.Option) (*ledger.Ledger, ledger.Store) {
	tb.Helper()
	s := su.newStore(tb)
	return su.startLedger(tb, s, opts...), s
}

// startLedger starts a ledger on s, closed (before s) at the end of the test.
func (su suite) startLedger(tb testing.TB, s ledger.Store, opts ...ledger.Option) *ledger.Ledger {
	tb.Helper()
	return StartLedger(tb, s, opts...)
}

// StartLedger starts a ledger on s, closed (before s, whose cleanup was
// registered earlier) at the end of the test.
func StartLedger(tb testing.TB, s ledger.Store, opts ...ledger.Option) *ledger.Ledger {
	tb.Helper()
	l, err := ledger.New(s, opts...)
	if err != nil {
		tb.Fatalf("new ledger: %v", err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return l
}
