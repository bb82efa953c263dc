package ledger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/sqlitestore"
	"mtlsbank/internal/money"
)

// BenchmarkTransfer measures a durable transfer (synchronous=FULL, one fsync
// per group commit): one caller at a time, then 50 concurrent callers, and 50 on
// the ledger as services/accounts runs it on SQLite (the sole writer of its file,
// with the account cache).
func BenchmarkTransfer(b *testing.B) {
	run := func(b *testing.B, parallel bool, opts ...ledger.Option) {
		var l *ledger.Ledger
		if len(opts) == 0 {
			l, _ = newLedger(b)
		} else {
			l = startLedger(b, openStore(b, filepath.Join(b.TempDir(), "ledger.db"), sqlitestore.WithExclusive()), opts...)
		}
		const n = 16
		accts := make([]ledger.Account, n)
		for i := range accts {
			accts[i] = mustOpen(b, l, alice, "EUR")
			mustDeposit(b, l, accts[i], ledger.DefaultMaxAmount*100)
		}
		var seq atomic.Int64
		transfer := func() {
			k := seq.Add(1)
			from, to := accts[k%n], accts[(k+1)%n]
			_, err := l.Transfer(context.Background(), ledger.TransferRequest{
				FromAccountID: string(from.ID), ToAccountID: string(to.ID),
				Amount:         money.Amount{Currency: "EUR", Minor: 1 + k%100},
				IdempotencyKey: fmt.Sprintf("bench-%d", k), Principal: payments,
			})
			if err != nil {
				b.Errorf("transfer: %v", err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			for b.Loop() {
				transfer()
			}
		} else {
			// 50 callers in all, whatever GOMAXPROCS is.
			b.SetParallelism(max(1, 50/testingProcs()))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					transfer()
				}
			})
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transfers/s")
	}
	b.Run("sequential", func(b *testing.B) { run(b, false) })
	b.Run("parallel50", func(b *testing.B) { run(b, true) })
	b.Run("parallel50-cache", func(b *testing.B) { run(b, true, ledger.WithAccountCache(ledger.DefaultAccountCache)) })
}

// BenchmarkGetAccount measures reading an account: from the SQLite store (a read
// transaction on the read pool), and from the account cache of a ledger that is its
// store's sole writer.
func BenchmarkGetAccount(b *testing.B) {
	for _, c := range []struct {
		name  string
		start func(b *testing.B) *ledger.Ledger
	}{
		{"store", func(b *testing.B) *ledger.Ledger { l, _ := newLedger(b); return l }},
		{"cache", func(b *testing.B) *ledger.Ledger { l, _ := newCachedLedger(b); return l }},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := c.start(b)
			id := string(mustOpen(b, l, alice, "EUR").ID)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.GetAccount(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
