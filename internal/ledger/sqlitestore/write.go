package sqlitestore

import (
	"context"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/writeset"
)

// backend is the writeset.Backend of an Update: reads and writes on the writer
// connection's transaction. The write transaction (writeset.Tx) keeps a batch's writes
// in memory until its commit, so that a move costs no savepoint statements and each
// account's balance is written once per batch however many moves set it (the profile
// of a transfer batch in docs/benchmarks.md). What it keeps stays right because the
// transaction holds SQLite's write lock from its BEGIN (IMMEDIATE): no other writer,
// of this process or another, changes a row until it commits.
type backend struct {
	txn
	sized *sizedStatements
}

var (
	_ writeset.Backend     = (*backend)(nil)
	_ writeset.BatchReader = (*backend)(nil)
)

// counter reads the entry sequence counter at the start of the transaction: no other
// writer allocates until it commits, so sequences commit in order and without gaps.
func (b *backend) counter(ctx context.Context) (int64, error) {
	s, err := b.stmt(ctx, stmtReadSequence)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: read sequence counter: %w", err)
	}
	return n, nil
}

// Send implements writeset.Backend.
func (b *backend) Send(ctx context.Context, steps []writeset.Step) error {
	for _, s := range steps {
		var err error
		switch s.Kind {
		case writeset.StepWrites:
			err = b.writeGroup(ctx, s.Group)
		case writeset.StepSavepoint:
			_, err = b.tx.ExecContext(ctx, "SAVEPOINT "+s.Name)
		case writeset.StepRelease:
			_, err = b.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+s.Name)
		case writeset.StepRollback:
			if _, err = b.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+s.Name); err == nil {
				_, err = b.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+s.Name)
			}
		default:
			err = fmt.Errorf("sqlitestore: unknown write step %d", s.Kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// commit sends what the write transaction still holds and moves the sequence counter
// past its allocations; Update then commits.
func (b *backend) commit(ctx context.Context, tx *writeset.Tx) error {
	if err := tx.Err(); err != nil {
		return err
	}
	if err := b.Send(ctx, tx.Pending()); err != nil {
		return refused(err)
	}
	taken, last := tx.Counter()
	if last == taken {
		return nil
	}
	return b.execOne(ctx, stmtWriteSequence, last)
}

// writeGroup writes a group of writes in the order its foreign keys need.
func (b *backend) writeGroup(ctx context.Context, g *writeset.Group) error {
	for _, a := range g.Accounts {
		if _, err := b.exec(ctx, stmtInsertAccount, string(a.ID), a.Owner, a.Currency, a.Balance,
			a.DisplayName, a.System, a.CreatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("sqlitestore: insert account %s: %w", a.ID, err)
		}
	}
	for _, bal := range g.Balances {
		if err := b.execOne(ctx, stmtSetBalance, bal.Balance, string(bal.ID)); err != nil {
			return fmt.Errorf("sqlitestore: set balance of %s: %w", bal.ID, err)
		}
	}
	txns := g.Transactions
	err := b.insertRows(ctx, insertTransactions, len(txns), func(i int, row []any) {
		tr := txns[i]
		row[0], row[1], row[2], row[3], row[4] = string(tr.ID), string(tr.Kind), tr.Amount, tr.Currency, tr.Reference
		row[5], row[6], row[7] = tr.Principal, tr.OnBehalfOf, tr.CreatedAt.UnixMicro()
		row[8], row[9] = tr.Entries[0].Sequence, len(tr.Entries)
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: insert transactions: %w", err)
	}
	var entries []ledger.Entry
	for _, tr := range txns {
		entries = append(entries, tr.Entries...)
	}
	err = b.insertRows(ctx, insertEntries, len(entries), func(i int, row []any) {
		e := &entries[i]
		row[0], row[1], row[2], row[3] = e.Sequence, string(e.TransactionID), string(e.AccountID), e.Amount
		row[4], row[5], row[6] = e.Currency, e.BalanceAfter, e.CreatedAt.UnixMicro()
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: insert entries: %w", err)
	}
	recs := g.Records
	err = b.insertRows(ctx, insertRecords, len(recs), func(i int, row []any) {
		r := recs[i]
		var txID any // NULL for a refusal
		if r.TransactionID != "" {
			txID = string(r.TransactionID)
		}
		row[0], row[1], row[2], row[3] = r.Principal, r.Key, r.Fingerprint, txID
		row[4], row[5], row[6], row[7] = r.RefusalCode, r.RefusalField, r.RefusalDetail, r.CreatedAt.UnixMicro()
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: insert idempotency records: %w", err)
	}
	return nil
}

// execOne runs a statement that must change exactly one row.
func (b *backend) execOne(ctx context.Context, id stmtID, args ...any) error {
	r, err := b.exec(ctx, id, args...)
	if err != nil {
		return err
	}
	if n, err := r.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%d rows changed, want 1 (%v)", n, err)
	}
	return nil
}

// refused marks a write that SQLite refused (a constraint or a trigger) when the writes
// were sent at the commit: the transaction rolls back, nothing of it is written, and no
// request can be blamed (ledger.ErrNotWritten). A duplicate key among them, a row the
// transaction did not read (it holds the write lock, so no other writer added it
// meanwhile: a bug, or a row written by hand), is also ledger.ErrConflict: the ledger
// runs the batch again, and the rerun's reads see the row. Other failures (I/O, a full
// disk) are not the row's and are left as they are.
func refused(err error) error {
	var se *sqlite.Error
	switch {
	case errors.Is(err, ledger.ErrDuplicateKey):
		return fmt.Errorf("%w (%w): %w", ledger.ErrConflict, ledger.ErrNotWritten, err)
	case errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT:
		return fmt.Errorf("%w: %w", ledger.ErrNotWritten, err)
	}
	return err
}
