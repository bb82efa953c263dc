package ledger

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Page sizes of ListTransactions.
const (
	// DefaultTransactionPageSize is the page size when the request gives none.
	DefaultTransactionPageSize = 100
	// MaxTransactionPageSize is the largest page; larger requests are cut to it.
	MaxTransactionPageSize = 1000
)

// ListTransactionsRequest asks for a page of transactions in commit order.
type ListTransactionsRequest struct {
	// PageSize is the maximum number of transactions: 0 means
	// DefaultTransactionPageSize, more than MaxTransactionPageSize means
	// MaxTransactionPageSize.
	PageSize int
	// PageToken continues a previous listing.
	PageToken string
}

// TransactionPage is one page of ListTransactions.
type TransactionPage struct {
	// Transactions are in commit (sequence) order, with their entries and keys.
	Transactions []KeyedTransaction
	// NextPageToken fetches the next page; empty on the last one.
	NextPageToken string
}

// ListTransactions returns a page of every transaction of the ledger, in
// commit order, for audits. Sequences commit in order, so a listing that
// reaches the last page has seen every transaction committed before it began.
func (l *Ledger) ListTransactions(ctx context.Context, req ListTransactionsRequest) (TransactionPage, error) {
	size, err := pageSize(req.PageSize, DefaultTransactionPageSize, MaxTransactionPageSize)
	if err != nil {
		return TransactionPage{}, err
	}
	var after int64
	if req.PageToken != "" {
		var err error
		if after, err = decodeSequenceToken(req.PageToken); err != nil {
			return TransactionPage{}, err
		}
	}
	var page TransactionPage
	err = l.store.View(ctx, func(tx ReadTx) error {
		// One more than asked tells whether there is a next page.
		ts, err := tx.TransactionsAfter(ctx, after, size+1)
		if err != nil {
			return fmt.Errorf("ledger: list transactions: %w", err)
		}
		if len(ts) > size {
			ts = ts[:size]
			last := ts[size-1].Entries
			page.NextPageToken = encodeSequenceToken(last[len(last)-1].Sequence)
		}
		page.Transactions = ts
		return nil
	})
	return page, err
}

// A transaction page token is base64url("t1." + the last sequence listed): opaque
// to clients, not secret.
const sequenceTokenVersion = "t1"

func encodeSequenceToken(last int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(sequenceTokenVersion + "." + strconv.FormatInt(last, 10)))
}

func decodeSequenceToken(token string) (int64, error) {
	bad := func(why string) error {
		return &Error{Field: "page_token", Err: ErrInvalidPageToken, Detail: why}
	}
	if len(token) > 100 {
		return 0, bad("too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, bad("not base64url")
	}
	v, seq, ok := strings.Cut(string(raw), ".")
	if !ok || v != sequenceTokenVersion {
		return 0, bad("not a transaction page token")
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n < 1 {
		return 0, bad("not a transaction page token")
	}
	return n, nil
}

// AttachEntries gives each of ts (in sequence order, without entries) its
// entries, out of entries: the consecutive entries of all of them, in sequence
// order, as one range read returns them. It is for stores implementing
// ReadTx.TransactionsAfter, and fails if an entry belongs to another
// transaction than the one whose range it falls in, or one is missing.
func AttachEntries(ts []KeyedTransaction, entries []Entry) ([]KeyedTransaction, error) {
	i := 0
	for k := range ts {
		for i < len(entries) && entries[i].TransactionID == ts[k].ID {
			ts[k].Entries = append(ts[k].Entries, entries[i])
			i++
		}
		if len(ts[k].Entries) == 0 {
			return nil, fmt.Errorf("transaction %s has no entries where they belong", ts[k].ID)
		}
	}
	if i != len(entries) {
		return nil, fmt.Errorf("entry %d belongs to transaction %s, not to the one whose range it is in", entries[i].Sequence, entries[i].TransactionID)
	}
	return ts, nil
}
