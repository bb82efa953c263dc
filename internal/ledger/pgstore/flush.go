package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mtlsbank/internal/ledger"
)

// The statements that send a batch's writes: the inserts one per table whatever
// the number of rows, from arrays.
const (
	lockCounter   = `SELECT last_sequence FROM entry_sequence WHERE id = 1 FOR UPDATE`
	writeCounter  = `UPDATE entry_sequence SET last_sequence = $1 WHERE id = 1`
	notifyCommit  = `SELECT pg_notify($1, '')`
	beginWrite    = `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE`
	commitWrite   = `COMMIT`
	insertAccount = `INSERT INTO accounts (` + accountColumns + `)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::boolean[], $7::bigint[])`
	// A statement per account: joined to an array, the accounts would be
	// found by whatever plan the server made when the table was small.
	updateBalance      = `UPDATE accounts SET balance = $1 WHERE id = $2`
	insertTransactions = `INSERT INTO transactions (id, kind, amount, currency, reference, principal, on_behalf_of,
		created_at, first_sequence, entry_count)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
		$8::bigint[], $9::bigint[], $10::int[])`
	insertEntries = `INSERT INTO entries (` + entryColumns + `)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[])`
	insertIdempotency = `INSERT INTO idempotency (principal, idem_key, fingerprint, transaction_id, refusal_code,
		refusal_field, refusal_detail, created_at)
		SELECT p, k, f, NULLIF(t, ''), c, fl, d, at FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[],
		$5::text[], $6::text[], $7::text[], $8::bigint[]) AS r (p, k, f, t, c, fl, d, at)`
)

// pipeline is statements sent in one round trip, each with the number of rows
// it must change (-1: any).
type pipeline struct {
	b    pgx.Batch
	rows []int64
	// entries: it inserts entries.
	entries bool
}

func (p *pipeline) queue(rows int64, sql string, args ...any) {
	p.b.Queue(sql, args...)
	p.rows = append(p.rows, rows)
}

// begin starts the transaction and locks the counter row, in one round trip.
func (w *work) begin(ctx context.Context) error {
	b := &pgx.Batch{}
	b.Queue(beginWrite)
	b.Queue(lockCounter)
	br := w.conn.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&w.lockedSeq)
	}
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return w.fail(fmt.Errorf("pgstore: begin and lock the sequence counter: %w", err))
	}
	w.lastSeq = w.lockedSeq
	return nil
}

// queueWrites queues the writes not sent yet, each open savepoint's SAVEPOINT
// before its first write, and marks them sent.
func (w *work) queueWrites(p *pipeline) {
	var seg segment
	next := 0 // the first open savepoint whose SAVEPOINT may still be due
	for i, o := range w.ops {
		for ; next < len(w.scopes); next++ {
			s := w.scopes[next]
			if s.sent {
				continue
			}
			if s.mark > i {
				break
			}
			seg.queue(p)
			p.queue(-1, "SAVEPOINT sp"+strconv.Itoa(next+1))
			s.sent = true
		}
		if o.kind == opStatement {
			seg.queue(p)
			p.queue(-1, o.sql)
			continue
		}
		seg.add(o)
	}
	seg.queue(p)
	clear(w.ops)
	w.ops = w.ops[:0]
	for _, s := range w.scopes {
		s.mark = 0
	}
}

// flush sends the writes not sent yet, before a read that needs them on the
// server.
func (w *work) flush(ctx context.Context) error {
	if w.err != nil {
		return w.err
	}
	if len(w.ops) == 0 {
		return nil
	}
	p := &pipeline{}
	w.queueWrites(p)
	return w.send(ctx, p)
}

// commit sends the writes not sent yet, the counter, the announcement of new
// entries and the COMMIT in one round trip.
func (w *work) commit(ctx context.Context) error {
	if w.err != nil {
		return w.err
	}
	p := &pipeline{}
	w.queueWrites(p)
	if w.lastSeq != w.lockedSeq {
		p.queue(1, writeCounter, w.lastSeq)
	}
	if w.wrote || p.entries {
		// Delivered to the listeners at commit, and only if it commits.
		p.queue(-1, notifyCommit, commitChannel)
	}
	p.queue(-1, commitWrite)
	return w.send(ctx, p)
}

// send runs a pipeline and checks what each statement changed. A unique
// violation is a row another transaction committed first: ledger.ErrConflict.
func (w *work) send(ctx context.Context, p *pipeline) error {
	br := w.conn.SendBatch(ctx, &p.b)
	var err error
	for i, want := range p.rows {
		var tag pgconn.CommandTag
		if tag, err = br.Exec(); err != nil {
			err = conflict(err)
			break
		}
		if want >= 0 && tag.RowsAffected() != want {
			err = fmt.Errorf("pgstore: %s changed %d rows, want %d", tag, tag.RowsAffected(), want)
			break
		}
		if p.b.QueuedQueries[i].SQL == commitWrite && tag.String() != "COMMIT" {
			err = fmt.Errorf("pgstore: commit answered %q", tag)
			break
		}
	}
	if closeErr := br.Close(); err == nil && closeErr != nil {
		err = conflict(closeErr)
	}
	if err != nil {
		return w.fail(fmt.Errorf("pgstore: send writes: %w", err))
	}
	w.wrote = w.wrote || p.entries
	return nil
}

// conflict marks a unique violation as ledger.ErrConflict and
// ledger.ErrDuplicateKey.
func conflict(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == uniqueViolation {
		return fmt.Errorf("%w (%w): %v", ledger.ErrConflict, ledger.ErrDuplicateKey, err)
	}
	return err
}

// segment gathers writes that no SAVEPOINT or RELEASE separates, so that each
// table gets one insert and each account one balance: accounts first, then
// balances, transactions, entries and idempotency records, the order their
// foreign keys need.
type segment struct {
	accounts []*ledger.Account
	// balances are the last balance set of each account, in order of first set.
	balances map[ledger.AccountID]int64
	order    []ledger.AccountID
	txns     []*ledger.Transaction
	recs     []*ledger.IdempotencyRecord
}

func (g *segment) add(o op) {
	switch o.kind {
	case opAccount:
		g.accounts = append(g.accounts, o.account)
	case opBalance:
		if g.balances == nil {
			g.balances = make(map[ledger.AccountID]int64)
		}
		if _, ok := g.balances[o.id]; !ok {
			g.order = append(g.order, o.id)
		}
		g.balances[o.id] = o.balance
	case opTransaction:
		g.txns = append(g.txns, o.txn)
	case opIdempotency:
		g.recs = append(g.recs, o.rec)
	}
}

// queue queues the segment's statements and empties it.
func (g *segment) queue(p *pipeline) {
	if n := len(g.accounts); n > 0 {
		ids, owners, currencies, names := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		balances, created, system := make([]int64, n), make([]int64, n), make([]bool, n)
		for i, a := range g.accounts {
			ids[i], owners[i], currencies[i], names[i] = string(a.ID), a.Owner, a.Currency, a.DisplayName
			balances[i], created[i], system[i] = a.Balance, a.CreatedAt.UnixMicro(), a.System
		}
		p.queue(int64(n), insertAccount, ids, owners, currencies, balances, names, system, created)
	}
	for _, id := range g.order {
		p.queue(1, updateBalance, g.balances[id], string(id))
	}
	if n := len(g.txns); n > 0 {
		ids, kinds, currencies, refs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		principals, onBehalf := make([]string, n), make([]string, n)
		amounts, created, firsts, counts := make([]int64, n), make([]int64, n), make([]int64, n), make([]int32, n)
		var entries []ledger.Entry
		for i, t := range g.txns {
			ids[i], kinds[i], currencies[i], refs[i] = string(t.ID), string(t.Kind), t.Currency, t.Reference
			principals[i], onBehalf[i] = t.Principal, t.OnBehalfOf
			amounts[i], created[i], firsts[i], counts[i] = t.Amount, t.CreatedAt.UnixMicro(), t.Entries[0].Sequence, int32(len(t.Entries))
			entries = append(entries, t.Entries...)
		}
		p.queue(int64(n), insertTransactions, ids, kinds, amounts, currencies, refs, principals, onBehalf, created, firsts, counts)

		m := len(entries)
		seqs, amts, after, at := make([]int64, m), make([]int64, m), make([]int64, m), make([]int64, m)
		txIDs, accts, curs := make([]string, m), make([]string, m), make([]string, m)
		for i, e := range entries {
			seqs[i], txIDs[i], accts[i], amts[i] = e.Sequence, string(e.TransactionID), string(e.AccountID), e.Amount
			curs[i], after[i], at[i] = e.Currency, e.BalanceAfter, e.CreatedAt.UnixMicro()
		}
		p.queue(int64(m), insertEntries, seqs, txIDs, accts, amts, curs, after, at)
		p.entries = true
	}
	if n := len(g.recs); n > 0 {
		principals, keys, txIDs, codes := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		fields, details := make([]string, n), make([]string, n)
		fingerprints, created := make([][]byte, n), make([]int64, n)
		for i, r := range g.recs {
			principals[i], keys[i], txIDs[i], codes[i] = r.Principal, r.Key, string(r.TransactionID), r.RefusalCode
			fields[i], details[i], fingerprints[i], created[i] = r.RefusalField, r.RefusalDetail, r.Fingerprint, r.CreatedAt.UnixMicro()
		}
		p.queue(int64(n), insertIdempotency, principals, keys, fingerprints, txIDs, codes, fields, details, created)
	}
	*g = segment{}
}
