package ledger

import (
	"context"
	"iter"
	"sync"
	"sync/atomic"
)

// accountCache keeps customer accounts as the store last had them, for GetAccount. It is
// coherent because the ledger's committer is the only writer of the store: after every
// transaction, and before any of its callers is answered, the committer brings each
// account the transaction wrote up to date (committed: the balance it committed), or
// forgets it (invalidate: the transaction failed, and may or may not have committed).
// So a caller that got the answer to a write, and everyone after it, reads what it
// wrote or later.
//
// A reader that misses reads the store and then adds what it read, unless a transaction
// ended in between (the generation moved): its snapshot may predate that transaction.
// Its read began after it loaded the generation, so if the generation has not moved when
// it adds, every transaction it could have missed either ends after the add (and its
// update or invalidation then applies to the added entry) or had committed before the
// read began (and is in what it read).
type accountCache struct {
	max int
	gen atomic.Uint64 // bumped by every invalidation

	mu      sync.RWMutex
	entries map[AccountID]*Account // immutable entries
}

func newAccountCache(max int) *accountCache {
	return &accountCache{max: max, entries: make(map[AccountID]*Account)}
}

// get returns the cached account with id.
func (c *accountCache) get(id AccountID) (Account, bool) {
	c.mu.RLock()
	a, ok := c.entries[id]
	c.mu.RUnlock()
	if !ok {
		return Account{}, false
	}
	return *a, true
}

// generation is what a reader loads before it reads the store.
func (c *accountCache) generation() uint64 { return c.gen.Load() }

// add caches a, read from the store after the generation was gen, unless a transaction
// ended since. A full cache drops an arbitrary entry first.
func (c *accountCache) add(a Account, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if _, ok := c.entries[a.ID]; !ok && len(c.entries) >= c.max {
		for id := range c.entries { // map order is random: a random victim
			delete(c.entries, id)
			break
		}
	}
	c.entries[a.ID] = &a
}

// committed applies what a committed transaction wrote: each cached account it set the
// balance of gets that balance. It moves the generation, so that no read that began
// before may add what it read.
func (c *accountCache) committed(w *writes) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, balance := range w.balances {
		if a, ok := c.entries[id]; ok && a.Balance != balance {
			updated := *a
			updated.Balance = balance
			c.entries[id] = &updated
		}
	}
	c.gen.Add(1)
}

// invalidate forgets the accounts a transaction that did not commit (or may have)
// touched, and moves the generation.
func (c *accountCache) invalidate(w *writes) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range w.touched {
		delete(c.entries, id)
	}
	c.gen.Add(1)
}

// len returns the number of cached accounts.
func (c *accountCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// keepingCache runs update with a Tx that notes what a transaction writes, and once
// update has returned, before the committer answers anyone, brings the cache up to date:
// the balances of a committed transaction, or, when update failed (a failed commit may
// still be durable), forgetting every account any attempt touched.
func keepingCache(update func(context.Context, func(Tx) error) error, cache *accountCache) func(context.Context, func(Tx) error) error {
	return func(ctx context.Context, fn func(Tx) error) error {
		w := &writes{}
		err := update(ctx, func(tx Tx) error {
			w.attempt() // a store may run fn again in a new transaction: only the last counts
			return fn(&notingTx{Tx: tx, w: w})
		})
		if err != nil {
			cache.invalidate(w)
		} else {
			cache.committed(w)
		}
		return err
	}
}

// writes is what one transaction wrote to accounts.
type writes struct {
	// balances are the balances set by the current attempt, savepoints rolled back
	// excluded: what its commit makes durable.
	balances map[AccountID]int64
	// touched are the accounts every attempt wrote or created, in any savepoint.
	touched []AccountID
}

func (w *writes) attempt() { clear(w.balances) }

func (w *writes) set(id AccountID, balance int64) {
	if w.balances == nil {
		w.balances = make(map[AccountID]int64)
	}
	w.balances[id] = balance
	w.touched = append(w.touched, id)
}

// merge adds what a savepoint wrote: the accounts it touched, and its balances if it
// was released (kept).
func (w *writes) merge(inner *writes, released bool) {
	w.touched = append(w.touched, inner.touched...)
	if !released {
		return
	}
	for id, balance := range inner.balances {
		w.set(id, balance)
	}
}

// notingTx notes the accounts a transaction writes. Inside a savepoint it notes into a
// writes of its own, merged into the enclosing one only if the savepoint is released.
type notingTx struct {
	Tx
	w *writes
}

func (t *notingTx) SetBalance(ctx context.Context, id AccountID, balance int64) error {
	if err := t.Tx.SetBalance(ctx, id, balance); err != nil {
		t.w.touched = append(t.w.touched, id)
		return err
	}
	t.w.set(id, balance)
	return nil
}

func (t *notingTx) CreateAccount(ctx context.Context, a Account) error {
	t.w.touched = append(t.w.touched, a.ID)
	return t.Tx.CreateAccount(ctx, a)
}

// Prefetch passes reads on to the transaction it wraps, if that one prefetches: an
// embedded Tx does not carry the Prefetcher's method, and without this the account
// cache (the SQLite default) would turn every batch's reads back into one read each.
func (t *notingTx) Prefetch(ctx context.Context, reads iter.Seq[Prefetch]) error {
	if p, ok := t.Tx.(Prefetcher); ok {
		return p.Prefetch(ctx, reads)
	}
	return nil
}

func (t *notingTx) Savepoint(ctx context.Context, fn func(Tx) error) error {
	inner := &writes{}
	err := t.Tx.Savepoint(ctx, func(tx Tx) error {
		return fn(&notingTx{Tx: tx, w: inner})
	})
	t.w.merge(inner, err == nil)
	return err
}
