package bench

import (
	"slices"
	"sync"
	"time"

	"mtlsbank/internal/groupcommit"
)

// The group commits the durable loads wait for, by the name the report gives them.
const (
	commitsLedger        = "accounts ledger"
	commitsAccountsAudit = "accounts audit"
	commitsPayments      = "payments store"
	commitsPaymentsAudit = "payments audit"
)

// commitTotals are the group commits of one store over some time: how many, the requests
// they carried, and the time they took (statements or records, commit, fsync).
type commitTotals struct {
	batches  int
	requests int
	took     time.Duration
}

func (t commitTotals) sub(u commitTotals) commitTotals {
	return commitTotals{batches: t.batches - u.batches, requests: t.requests - u.requests, took: t.took - u.took}
}

// commitTally counts the group commits of the harness's stores (groupcommit observers),
// so that a durable load's report says what its calls waited for: how often each store
// committed, how many requests shared a commit, how long one took.
type commitTally struct {
	mu     sync.Mutex
	stores map[string]commitTotals
}

func newCommitTally() *commitTally { return &commitTally{stores: make(map[string]commitTotals)} }

// observer is the groupcommit.Observer of store.
func (c *commitTally) observer(store string) groupcommit.Observer {
	return func(requests int, took time.Duration) {
		c.mu.Lock()
		t := c.stores[store]
		c.stores[store] = commitTotals{batches: t.batches + 1, requests: t.requests + requests, took: t.took + took}
		c.mu.Unlock()
	}
}

// snapshot returns the totals so far.
func (c *commitTally) snapshot() map[string]commitTotals {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]commitTotals, len(c.stores))
	for k, v := range c.stores {
		out[k] = v
	}
	return out
}

// since returns what was committed after before (a snapshot): the stores that committed.
func (c *commitTally) since(before map[string]commitTotals) map[string]commitTotals {
	out := c.snapshot()
	for k, v := range out {
		if d := v.sub(before[k]); d.batches > 0 {
			out[k] = d
		} else {
			delete(out, k)
		}
	}
	return out
}

// sumCommits adds up the commits of samples, by store, with the stores' names sorted.
func sumCommits(samples []sample) (map[string]commitTotals, time.Duration, []string) {
	sum := make(map[string]commitTotals)
	var elapsed time.Duration
	for _, s := range samples {
		elapsed += s.elapsed
		for k, v := range s.commits {
			t := sum[k]
			sum[k] = commitTotals{batches: t.batches + v.batches, requests: t.requests + v.requests, took: t.took + v.took}
		}
	}
	names := make([]string, 0, len(sum))
	for k := range sum {
		names = append(names, k)
	}
	slices.Sort(names)
	return sum, elapsed, names
}
