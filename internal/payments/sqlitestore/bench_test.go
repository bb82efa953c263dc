package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"mtlsbank/internal/payments"
)

// BenchmarkPayment is the store's share of a payment as the service makes it: the order
// recorded PENDING under the customer's rolling limit with the process's lease, then
// completed; 16 payments at a time (group commit, fsync per commit), all by one
// customer from 16 accounts to one, as the harness's payments load. The time per
// operation is the wall time per payment of the whole pool.
func BenchmarkPayment(b *testing.B) {
	store := openStore(b, filepath.Join(b.TempDir(), "payments.db"))
	orders := payments.NewOrders(store, time.Now)
	limit := &payments.RollingLimit{MinorUnits: 1 << 60, Window: 24 * time.Hour}
	lease := payments.Lease{Owner: "bench", Duration: time.Minute}
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			n := seq.Add(1)
			id := fmt.Sprintf("pay_%026d", n)
			p, created, err := orders.Create(ctx, payments.Payment{
				ID: id, CreatedBy: "spiffe://bank.local/customer/alice", IdempotencyKey: fmt.Sprintf("bench-%d", n),
				Fingerprint: "f", FromAccountID: fmt.Sprintf("acc_%026d", n%16), ToAccountID: "acc_bob",
				Currency: "EUR", MinorUnits: 1, TransferKey: "payment:" + id,
				CreatorSerial: "0a1b2c", CreatorIssuer: []byte("issuer"),
			}, payments.CreateOptions{Limit: limit, Lease: lease})
			if err != nil || !created || p.Status != payments.StatusPending {
				b.Fatalf("Create = %+v, %v, %v", p, created, err)
			}
			if p, err = orders.Complete(ctx, p, fmt.Sprintf("txn_%d", n)); err != nil || p.Status != payments.StatusCompleted {
				b.Fatalf("Complete = %+v, %v", p, err)
			}
		}
	})
}
