package ledger_test

// The ninth fresh attacker's tests of the account cache passing Prefetch on (commit
// f0e9215): with the cache on an exclusive SQLite file, many clients at once (so that
// batches prefetch for requests queued behind) each keep a model of their own two
// accounts and check every answer and every GetAccount after it against the model
// (read-your-writes), through refusals, replays (also the same key twice at once),
// self-transfers, unknown accounts and voids; shared accounts take concurrent
// transfers; at the end the cache must agree with the file read without a cache.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/money"
)

func a9Ledger(tb testing.TB, path string, opts ...ledger.Option) (*ledger.Ledger, *sqlitestore.Store) {
	tb.Helper()
	st, err := sqlitestore.Open(context.Background(), path, sqlitestore.WithExclusive())
	if err != nil {
		tb.Fatal(err)
	}
	l, err := ledger.New(st, opts...)
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	return l, st
}

func a9eur(n int64) money.Amount { return money.Amount{Currency: "EUR", Minor: n} }

func TestAttack9CachePrefetchModel(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	var maxBatch atomic.Int64
	l, st := a9Ledger(t, path, ledger.WithAccountCache(ledger.DefaultAccountCache),
		ledger.WithCommitObserver(func(n int, _ time.Duration) {
			for m := maxBatch.Load(); int64(n) > m && !maxBatch.CompareAndSwap(m, int64(n)); m = maxBatch.Load() {
			}
		}))
	closed := false
	defer func() {
		if !closed {
			l.Close()
			st.Close()
		}
	}()

	// An account id of another ledger: well-formed, unknown here.
	ol, ost := a9Ledger(t, filepath.Join(dir, "other.db"))
	ghost, err := ol.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: "spiffe://bank.local/user/ghost", Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	ol.Close()
	ost.Close()

	const clients = 24
	const rounds = 12
	shared := make([]string, 3)
	for i := range shared {
		a, err := l.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: "spiffe://bank.local/user/shared", Currency: "EUR"})
		if err != nil {
			t.Fatal(err)
		}
		shared[i] = string(a.ID)
		if _, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: shared[i], Amount: a9eur(1_000_000), IdempotencyKey: "seed" + shared[i], Principal: "spiffe://bank.local/user/shared"}); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	owned := make([][2]string, clients)
	models := make([][2]int64, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("spiffe://bank.local/user/c%d", c)
			var acc [2]string
			for i := range acc {
				a, err := l.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: owner, Currency: "EUR"})
				if err != nil {
					t.Error(err)
					return
				}
				acc[i] = string(a.ID)
			}
			owned[c] = acc
			var m [2]int64
			check := func(step string) bool {
				for i, id := range acc {
					a, err := l.GetAccount(ctx, id)
					if err != nil {
						t.Errorf("client %d %s: get: %v", c, step, err)
						return false
					}
					if a.Balance != m[i] {
						t.Errorf("client %d after %s: account %d balance %d, model %d", c, step, i, a.Balance, m[i])
						return false
					}
				}
				return true
			}
			balanceAfter := func(txn ledger.Transaction, id string) (int64, bool) {
				for _, e := range txn.Entries {
					if string(e.AccountID) == id {
						return e.BalanceAfter, true
					}
				}
				return 0, false
			}
			key := func(r int, s string) string { return fmt.Sprintf("c%d-r%d-%s", c, r, s) }
			for r := range rounds {
				// 1. deposit.
				d := int64(100 + r + c)
				dep := ledger.DepositRequest{AccountID: acc[0], Amount: a9eur(d), IdempotencyKey: key(r, "dep"), Principal: owner}
				txn, err := l.Deposit(ctx, dep)
				if err != nil {
					t.Errorf("client %d deposit: %v", c, err)
					return
				}
				m[0] += d
				if b, ok := balanceAfter(txn, acc[0]); !ok || b != m[0] || txn.Replayed {
					t.Errorf("client %d deposit: balance after %d (%v), model %d, replayed %v", c, b, ok, m[0], txn.Replayed)
				}
				if !check("deposit") {
					return
				}
				// 2. the same deposit twice at once: money moves once, both see one txn.
				dep2 := ledger.DepositRequest{AccountID: acc[1], Amount: a9eur(7), IdempotencyKey: key(r, "twice"), Principal: owner}
				var t1, t2 ledger.Transaction
				var e1, e2 error
				var w2 sync.WaitGroup
				w2.Add(2)
				go func() { defer w2.Done(); t1, e1 = l.Deposit(ctx, dep2) }()
				go func() { defer w2.Done(); t2, e2 = l.Deposit(ctx, dep2) }()
				w2.Wait()
				for _, e := range []error{e1, e2} {
					if e != nil && !errors.Is(e, ledger.ErrConcurrentRequest) {
						t.Errorf("client %d twice: %v", c, e)
					}
				}
				if e1 == nil && e2 == nil && (t1.ID != t2.ID || t1.Replayed == t2.Replayed) {
					t.Errorf("client %d twice: %s (replayed %v) and %s (replayed %v)", c, t1.ID, t1.Replayed, t2.ID, t2.Replayed)
				}
				if e1 != nil && e2 != nil {
					t.Errorf("client %d twice: both failed", c)
				}
				m[1] += 7
				if !check("deposit twice") {
					return
				}
				// 3. transfer A->B of what A has, and one B->A of more than B has.
				tr := ledger.TransferRequest{FromAccountID: acc[0], ToAccountID: acc[1], Amount: a9eur(m[0] / 2), IdempotencyKey: key(r, "tr"), Principal: owner}
				txn, err = l.Transfer(ctx, tr)
				if err != nil {
					t.Errorf("client %d transfer: %v", c, err)
					return
				}
				m[0] -= tr.Amount.Minor
				m[1] += tr.Amount.Minor
				if b, _ := balanceAfter(txn, acc[1]); b != m[1] {
					t.Errorf("client %d transfer: B after %d, model %d", c, b, m[1])
				}
				over := ledger.TransferRequest{FromAccountID: acc[1], ToAccountID: acc[0], Amount: a9eur(m[1] + 1), IdempotencyKey: key(r, "over"), Principal: owner}
				if _, err := l.Transfer(ctx, over); !errors.Is(err, ledger.ErrInsufficientFunds) {
					t.Errorf("client %d overdraft: %v, want insufficient funds", c, err)
				}
				if !check("transfer and overdraft") {
					return
				}
				// 4. self-transfer, unknown account, void of a fresh key then the original.
				self := ledger.TransferRequest{FromAccountID: acc[0], ToAccountID: acc[0], Amount: a9eur(1), IdempotencyKey: key(r, "self"), Principal: owner}
				if _, err := l.Transfer(ctx, self); err == nil {
					t.Errorf("client %d self-transfer accepted", c)
				}
				unk := ledger.TransferRequest{FromAccountID: acc[0], ToAccountID: string(ghost.ID), Amount: a9eur(1), IdempotencyKey: key(r, "unk"), Principal: owner}
				if _, err := l.Transfer(ctx, unk); !errors.Is(err, ledger.ErrAccountNotFound) {
					t.Errorf("client %d to an unknown account: %v", c, err)
				}
				vd := ledger.TransferRequest{FromAccountID: acc[0], ToAccountID: acc[1], Amount: a9eur(1), IdempotencyKey: key(r, "void"), Principal: owner, Void: true}
				if _, err := l.Transfer(ctx, vd); !errors.Is(err, ledger.ErrTransferVoided) {
					t.Errorf("client %d void: %v", c, err)
				}
				vd.Void = false
				if _, err := l.Transfer(ctx, vd); !errors.Is(err, ledger.ErrTransferVoided) {
					t.Errorf("client %d original after void: %v", c, err)
				}
				if !check("self, unknown, void") {
					return
				}
				// 5. void of the completed transfer: replays it; the overdraft's key after a
				// deposit that would cover it: still refused; the deposit's key: replayed.
				tr.Void = true
				if got, err := l.Transfer(ctx, tr); err != nil || got.ID != txn.ID || !got.Replayed {
					t.Errorf("client %d void of a completed transfer: %s replayed %v err %v, want %s", c, got.ID, got.Replayed, err, txn.ID)
				}
				if _, err := l.Deposit(ctx, ledger.DepositRequest{AccountID: acc[1], Amount: a9eur(m[1] + 10), IdempotencyKey: key(r, "cover"), Principal: owner}); err != nil {
					t.Error(err)
					return
				}
				m[1] += m[1] + 10
				if _, err := l.Transfer(ctx, over); !errors.Is(err, ledger.ErrInsufficientFunds) {
					t.Errorf("client %d overdraft replayed after cover: %v, want the recorded refusal", c, err)
				}
				if got, err := l.Deposit(ctx, dep); err != nil || !got.Replayed {
					t.Errorf("client %d deposit replay: %v replayed %v", c, err, got.Replayed)
				}
				// 6. withdraw; a transfer with a shared account (others write it at once).
				w := ledger.WithdrawRequest{AccountID: acc[1], Amount: a9eur(3), IdempotencyKey: key(r, "wd"), Principal: owner}
				if _, err := l.Withdraw(ctx, w); err != nil {
					t.Errorf("client %d withdraw: %v", c, err)
					return
				}
				m[1] -= 3
				sh := shared[(c+r)%len(shared)]
				if _, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: sh, ToAccountID: acc[0], Amount: a9eur(5), IdempotencyKey: key(r, "sh"), Principal: "spiffe://bank.local/user/shared"}); err != nil {
					t.Errorf("client %d from shared: %v", c, err)
					return
				}
				m[0] += 5
				if _, err := l.Transfer(ctx, ledger.TransferRequest{FromAccountID: shared[r%3], ToAccountID: shared[(r+1)%3], Amount: a9eur(int64(c + 1)), IdempotencyKey: key(r, "ss"), Principal: "spiffe://bank.local/user/shared"}); err != nil {
					t.Errorf("client %d shared to shared: %v", c, err)
				}
				if !check("round end") {
					return
				}
			}
			models[c] = m
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if maxBatch.Load() < 4 {
		t.Errorf("largest batch %d requests: the prefetch of the requests queued behind never ran", maxBatch.Load())
	}
	t.Logf("largest batch: %d requests", maxBatch.Load())
	// The cache against the file read without one.
	cached := map[string]int64{}
	for _, acc := range owned {
		for _, id := range acc {
			a, err := l.GetAccount(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			cached[id] = a.Balance
		}
	}
	var sharedSum int64
	for _, id := range shared {
		a, err := l.GetAccount(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		cached[id] = a.Balance
		sharedSum += a.Balance
	}
	// Shared accounts lose only what clients took (5 a round each); transfers among them net zero.
	if want := int64(3*1_000_000 - clients*rounds*5); sharedSum != want {
		t.Errorf("shared accounts sum to %d, want %d", sharedSum, want)
	}
	l.Close()
	st.Close()
	closed = true
	l2, st2 := a9Ledger(t, path)
	defer func() { l2.Close(); st2.Close() }()
	for id, b := range cached {
		a, err := l2.GetAccount(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != b {
			t.Errorf("account %s: the cache said %d, the file holds %d", id, b, a.Balance)
		}
	}
	for c, acc := range owned {
		for i, id := range acc {
			if cached[id] != models[c][i] {
				t.Errorf("client %d account %d: %d, model %d", c, i, cached[id], models[c][i])
			}
		}
	}
}

// a9FlakyStore fails some batches: every 5th after running them (rolled back: a
// failed commit), every 7th after committing them (durable, yet reported failed).
type a9FlakyStore struct {
	*sqlitestore.Store
	n atomic.Int64
}

var errA9Injected = errors.New("injected commit failure")

func (s *a9FlakyStore) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	i := s.n.Add(1)
	switch {
	case i%5 == 0:
		err := s.Store.Update(ctx, func(tx ledger.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errA9Injected
		})
		return err
	case i%7 == 0:
		if err := s.Store.Update(ctx, fn); err != nil {
			return err
		}
		return errA9Injected
	}
	return s.Store.Update(ctx, fn)
}

// TestAttack9CacheFailedCommits: batches (with prefetch) that fail, rolled back or
// durable; each client retries with the same key until it gets an answer, and then
// its GetAccount through the cache must show exactly its model, as must the file.
func TestAttack9CacheFailedCommits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	inner, err := sqlitestore.Open(ctx, path, sqlitestore.WithExclusive())
	if err != nil {
		t.Fatal(err)
	}
	fs := &a9FlakyStore{Store: inner}
	l, err := ledger.New(fs, ledger.WithAccountCache(1000))
	if err != nil {
		t.Fatal(err)
	}
	const clients, rounds = 16, 10
	owned := make([][2]string, clients)
	models := make([][2]int64, clients)
	var injected atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("spiffe://bank.local/user/f%d", c)
			// retry runs op until it answers other than with the injected failure.
			retry := func(op func() (ledger.Transaction, error)) (ledger.Transaction, error) {
				for range 50 {
					txn, err := op()
					if !errors.Is(err, errA9Injected) {
						return txn, err
					}
					injected.Add(1)
				}
				return ledger.Transaction{}, errA9Injected
			}
			var acc [2]string
			for i := range acc {
				for range 50 {
					a, err := l.OpenAccount(ctx, ledger.OpenAccountRequest{Owner: owner, Currency: "EUR"})
					if err == nil {
						acc[i] = string(a.ID)
						break
					}
					if !errors.Is(err, errA9Injected) {
						t.Error(err)
						return
					}
				}
				if acc[i] == "" {
					t.Error("open account: failed 50 times")
					return
				}
			}
			owned[c] = acc
			var m [2]int64
			check := func(step string) bool {
				for i, id := range acc {
					a, err := l.GetAccount(ctx, id)
					if err != nil || a.Balance != m[i] {
						t.Errorf("client %d after %s: account %d balance %d (err %v), model %d", c, step, i, a.Balance, err, m[i])
						return false
					}
				}
				return true
			}
			for r := range rounds {
				d := int64(50 + r)
				_, err := retry(func() (ledger.Transaction, error) {
					return l.Deposit(ctx, ledger.DepositRequest{AccountID: acc[0], Amount: a9eur(d), IdempotencyKey: fmt.Sprintf("f%d-%d-dep", c, r), Principal: owner})
				})
				if err != nil {
					t.Errorf("client %d deposit: %v", c, err)
					return
				}
				m[0] += d
				if !check("deposit") {
					return
				}
				amt := m[0] / 3
				_, err = retry(func() (ledger.Transaction, error) {
					return l.Transfer(ctx, ledger.TransferRequest{FromAccountID: acc[0], ToAccountID: acc[1], Amount: a9eur(amt), IdempotencyKey: fmt.Sprintf("f%d-%d-tr", c, r), Principal: owner})
				})
				if err != nil {
					t.Errorf("client %d transfer: %v", c, err)
					return
				}
				m[0] -= amt
				m[1] += amt
				_, err = retry(func() (ledger.Transaction, error) {
					return l.Transfer(ctx, ledger.TransferRequest{FromAccountID: acc[1], ToAccountID: acc[0], Amount: a9eur(m[1] + 1), IdempotencyKey: fmt.Sprintf("f%d-%d-over", c, r), Principal: owner})
				})
				if !errors.Is(err, ledger.ErrInsufficientFunds) {
					t.Errorf("client %d overdraft: %v", c, err)
				}
				if !check("transfers") {
					return
				}
			}
			models[c] = m
		}()
	}
	wg.Wait()
	l.Close()
	inner.Close()
	if t.Failed() {
		return
	}
	if injected.Load() == 0 {
		t.Errorf("no injected failure reached a client")
	}
	t.Logf("injected failures seen by clients: %d", injected.Load())
	l2, st2 := a9Ledger(t, path)
	defer func() { l2.Close(); st2.Close() }()
	for c, acc := range owned {
		for i, id := range acc {
			a, err := l2.GetAccount(ctx, id)
			if err != nil || a.Balance != models[c][i] {
				t.Errorf("client %d account %d: file holds %d (err %v), model %d", c, i, a.Balance, err, models[c][i])
			}
		}
	}
}
