package pgstore_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/ledgertest"
	"mtlsbank/internal/money"
	"mtlsbank/internal/pgtest"
)

// BenchmarkTransferGroupCommit measures whether the ledger's group commit still
// pays on PostgreSQL: durable transfers from 50 concurrent callers with one
// request per transaction (max batch 1) and with the default batch. Every writer
// of the PostgreSQL store takes the sequence counter row first, so without
// grouping each transfer waits for the previous one's commit (and fsync).
//
// Run it on a durable cluster (the tests' cluster runs with fsync off):
//
//	BANK_TEST_PG_DURABLE=1 go test -run '^$' -bench TransferGroupCommit ./internal/ledger/pgstore
func BenchmarkTransferGroupCommit(b *testing.B) {
	for _, bc := range []struct {
		name     string
		maxBatch int
	}{
		{"batch1", 1},
		{"batch256", 256},
	} {
		b.Run(bc.name, func(b *testing.B) {
			url := pgtest.NewDatabase(b)
			if b.N == 1 { // the first of the runs that find b.N
				reportDurability(b, url)
			}
			store := &countingStore{Store: open(b, url)}
			l := ledgertest.StartLedger(b, store, ledger.WithMaxBatch(bc.maxBatch))
			const n = 16
			accts := make([]ledger.Account, n)
			for i := range accts {
				accts[i] = ledgertest.MustOpen(b, l, "spiffe://bank.local/customer/alice", "EUR")
				ledgertest.MustDeposit(b, l, accts[i], ledger.DefaultMaxAmount*100)
			}
			var seq atomic.Int64
			store.updates.Store(0)
			b.ResetTimer()
			b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0))) // 50 callers in all
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := seq.Add(1)
					_, err := l.Transfer(context.Background(), ledger.TransferRequest{
						FromAccountID: string(accts[k%n].ID), ToAccountID: string(accts[(k+1)%n].ID),
						Amount:         money.Amount{Currency: "EUR", Minor: 1 + k%100},
						IdempotencyKey: fmt.Sprintf("bench-%d", k), Principal: "spiffe://bank.local/service/payments",
					})
					if err != nil {
						b.Errorf("transfer: %v", err)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transfers/s")
			b.ReportMetric(float64(b.N)/float64(max(1, store.updates.Load())), "transfers/commit")
		})
	}
}

// countingStore counts the transactions the ledger commits.
type countingStore struct {
	ledger.Store
	updates atomic.Int64
}

func (s *countingStore) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	s.updates.Add(1)
	return s.Store.Update(ctx, fn)
}

// reportDurability logs the server's fsync and synchronous_commit: numbers from a
// cluster without fsync say nothing about durable commits.
func reportDurability(b *testing.B, url string) {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var fsync, syncCommit string
	if err := conn.QueryRow(context.Background(), `SELECT current_setting('fsync'), current_setting('synchronous_commit')`).Scan(&fsync, &syncCommit); err != nil {
		b.Fatal(err)
	}
	b.Logf("fsync=%s synchronous_commit=%s", fsync, syncCommit)
	if fsync != "on" {
		b.Logf("fsync is off: set %s=1 to measure durable commits", pgtest.EnvDurable)
	}
}
