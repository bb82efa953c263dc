package ledger_test

import (
	"sync"
	"testing"
	"time"

	"mtlsbank/internal/ledger"
)

// TestCommitObserver: each write transaction of the ledger (here on a real SQLite file,
// fsync included) is reported once to the observer, with its requests and a duration.
func TestCommitObserver(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	var took time.Duration
	l, _ := newLedger(t, ledger.WithCommitObserver(func(n int, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, n)
		took += d
	}))
	a := mustOpen(t, l, alice, "EUR")
	mustDeposit(t, l, a, 100)
	if got := balanceOf(t, l, a.ID); got != 100 { // a read: no transaction of the committer
		t.Fatalf("balance %d, want 100", got)
	}
	// A batch is observed right after its callers are answered: Close waits for the
	// committer to stop, so every observation is in.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		total += n
	}
	// The account, the currency's system account on first use, the deposit: in one to
	// three transactions, each observed once after it ended.
	if len(sizes) == 0 || total < 2 || took <= 0 {
		t.Fatalf("observed batches %v (%d requests), %v in all; want the writes, a duration", sizes, total, took)
	}
}
