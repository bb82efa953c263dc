package ledgertest

import (
	"slices"
	"strings"
	"testing"

	"mtlsbank/internal/ledger"
)

// Stores opens the stores under test.
type Stores struct {
	// New returns a store on a new, empty database, closed when the test ends.
	New func(tb testing.TB) ledger.Store
	// Replicas returns n stores on one new, empty database, each with its own
	// connections as n processes (replicas of the service) would have, all
	// closed when the test ends. Nil skips the replica tests (a store that holds
	// its database alone).
	Replicas func(tb testing.TB, n int) []ledger.Store
	// LedgerOptions are given to every ledger the suite starts (before a test's
	// own), such as ledger.WithAccountCache for a store that holds its database alone.
	LedgerOptions []ledger.Option
}

// suite runs the tests against one kind of store.
type suite struct{ stores Stores }

// Run runs every test of the suite against the stores, each as a subtest.
func Run(t *testing.T, stores Stores) {
	if stores.New == nil {
		t.Fatal("ledgertest: Stores needs New")
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
		{"DuplicateOfCommitted", su.testDuplicateOfCommitted},
		{"SavepointAroundReads", su.testSavepointAroundReads},
		{"ReadsInUpdate", su.testReadsInUpdate},
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
		{"ReplicasRaceOnKeys", su.testReplicasRaceOnKeys},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.name, "Replicas") && stores.Replicas == nil {
				t.Skip("the store holds its database alone: no replicas")
			}
			tt.test(t)
		})
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

// startLedger starts a ledger on s with the suite's options and opts, closed (before
// s) at the end of the test.
func (su suite) startLedger(tb testing.TB, s ledger.Store, opts ...ledger.Option) *ledger.Ledger {
	tb.Helper()
	return StartLedger(tb, s, append(slices.Clone(su.stores.LedgerOptions), opts...)...)
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
