package bench

import (
	"maps"
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

func (t commitTotals) add(u commitTotals) commitTotals {
	return commitTotals{batches: t.batches + u.batches, requests: t.requests + u.requests, took: t.took + u.took}
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
		c.stores[store] = c.stores[store].add(commitTotals{batches: 1, requests: requests, took: took})
		c.mu.Unlock()
	}
}

// snapshot returns the totals so far.
func (c *commitTally) snapshot() map[string]commitTotals {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.stores)
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
			sum[k] = sum[k].add(v)
		}
	}
	return sum, elapsed, slices.Sorted(maps.Keys(sum))
}
