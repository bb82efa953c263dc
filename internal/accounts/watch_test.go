package accounts_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
)

// writer makes money move and remembers every entry the ledger reported, by sequence.
type writer struct {
	b       *bank
	n       int
	entries []*accountsv1.LedgerEntry
}

func (w *writer) record(tb testing.TB, t *accountsv1.Transaction) {
	tb.Helper()
	for _, e := range t.GetEntries() {
		if want := int64(len(w.entries) + 1); e.GetSequence() != want {
			tb.Fatalf("write reported sequence %d, want %d", e.GetSequence(), want)
		}
		w.entries = append(w.entries, e)
	}
}

// write makes one deposit and one delegated transfer.
func (w *writer) write(tb testing.TB) {
	tb.Helper()
	w.n++
	w.record(tb, deposit(tb, w.b.teller, w.b.aliceEUR, 100, fmt.Sprintf("watch-dep-%d", w.n)).GetTransaction())
	r, err := w.b.payments.Transfer(actingFor(callCtx(tb), aliceID), &accountsv1.TransferRequest{
		FromAccountId: w.b.aliceEUR.GetId(), ToAccountId: w.b.bobEUR.GetId(),
		Amount: amountOf("EUR", 50), IdempotencyKey: fmt.Sprintf("watch-tr-%d", w.n),
	})
	if err != nil {
		tb.Fatalf("transfer %d: %v", w.n, err)
	}
	w.record(tb, r.GetTransaction())
}

// recvUpTo reads entries until the stream has delivered sequence last, and fails on any
// entry out of order, repeated or different from what the write reported.
func recvUpTo(tb testing.TB, name string, s grpc.ServerStreamingClient[accountsv1.WatchLedgerResponse], next *int64, last int64, want []*accountsv1.LedgerEntry) {
	tb.Helper()
	for *next <= last {
		resp, err := s.Recv()
		if err != nil {
			tb.Fatalf("%s: recv sequence %d: %v", name, *next, err)
		}
		e := resp.GetEntry()
		if e.GetSequence() != *next {
			tb.Fatalf("%s: got sequence %d, want %d (each entry exactly once, in order)", name, e.GetSequence(), *next)
		}
		if !proto.Equal(e, want[*next-1]) {
			tb.Fatalf("%s: entry %d is\n%v\nwant\n%v", name, *next, e, want[*next-1])
		}
		*next++
	}
}

func TestWatchLedger(t *testing.T) {
	b := newBank(t)
	w := &writer{b: b, entries: slices.Clone(b.entries)} // the funding deposits come first
	ctxEarly, cancelEarly := context.WithCancel(callCtx(t))
	defer cancelEarly()
	early, err := b.auditor.WatchLedger(ctxEarly, &accountsv1.WatchLedgerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nextEarly := int64(1)
	recvUpTo(t, "early", early, &nextEarly, int64(len(w.entries)), w.entries)
	// early is now waiting for live entries.
	for range 5 {
		w.write(t)
	}
	recvUpTo(t, "early", early, &nextEarly, int64(len(w.entries)), w.entries)

	late, err := b.auditor.WatchLedger(callCtx(t), &accountsv1.WatchLedgerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nextLate := int64(1)
	from, err := b.auditor.WatchLedger(callCtx(t), &accountsv1.WatchLedgerRequest{AfterSequence: 10})
	if err != nil {
		t.Fatal(err)
	}
	nextFrom := int64(11)
	for range 5 {
		w.write(t)
	}
	last := int64(len(w.entries))
	recvUpTo(t, "early", early, &nextEarly, last, w.entries)
	recvUpTo(t, "late", late, &nextLate, last, w.entries)
	recvUpTo(t, "after 10", from, &nextFrom, last, w.entries)

	// Nothing was delivered twice: the next entry each stream sees is the next write's.
	w.write(t)
	last = int64(len(w.entries))
	recvUpTo(t, "early", early, &nextEarly, last, w.entries)
	recvUpTo(t, "late", late, &nextLate, last, w.entries)
	recvUpTo(t, "after 10", from, &nextFrom, last, w.entries)

	// The stream runs until the client cancels.
	cancelEarly()
	for {
		_, err := early.Recv()
		if err == nil {
			continue
		}
		wantStatus(t, err, codes.Canceled, "")
		break
	}
}
