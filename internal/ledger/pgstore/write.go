package pgstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mtlsbank/internal/ledger"
)

// writeTx implements ledger.Tx for Update, with as few round trips to the
// server as it can: the server's CPU and this process's go to each statement
// and each round trip far more than to the rows (see docs/benchmarks.md).
//
// It sends reads as they come (a Prefetch's, for a whole batch of requests, in
// one round trip) but keeps writes in memory, answers the transaction's own
// reads from them, and sends them in the round trip that commits: an insert
// per table for the whole batch, and each account's last balance (flush.go).
// What it keeps stays right because the transaction holds its rows until it
// ends: the sequence counter row (so no other writer runs meanwhile, on any
// replica) and the account rows it read (FOR UPDATE).
//
// A savepoint costs nothing while its writes are in memory: rolling it back
// drops them and undoes what it changed in memory. Only a savepoint still
// open when the writes must be sent early (a read that needs them on the
// server, as a listing does) becomes an SQL SAVEPOINT.
type writeTx struct{ w *work }

var (
	_ ledger.Tx         = (*writeTx)(nil)
	_ ledger.Prefetcher = (*writeTx)(nil)
)

// work is the state of one write transaction, shared by its savepoints.
type work struct {
	conn *pgxpool.Conn
	// err, once set, broke the transaction on the server: everything that
	// follows fails with it, and Update rolls back.
	err error
	// lockedSeq is the counter as locked at the start, lastSeq the last
	// sequence handed out since; the counter is written at the commit.
	lockedSeq, lastSeq int64
	// accounts are the rows this transaction locked (read) or created, as it
	// has them now; systems finds the system account of a currency there.
	accounts map[ledger.AccountID]ledger.Account
	systems  map[string]ledger.AccountID
	// keys are the idempotency records read (found or not) or created.
	keys map[idemKey]idemRecord
	// txns are the transactions created.
	txns map[ledger.TransactionID]ledger.Transaction
	// ops are the writes not sent yet, in order.
	ops []op
	// scopes are the open savepoints, innermost last.
	scopes []*scope
	// wrote: entries were sent, so the commit announces itself (NOTIFY).
	wrote bool
}

type idemKey struct{ principal, key string }

type idemRecord struct {
	rec   ledger.IdempotencyRecord
	found bool
}

// scope is an open savepoint.
type scope struct {
	// mark is where its writes begin in ops.
	mark int
	// sent: its writes began to reach the server, after an SQL SAVEPOINT.
	sent bool
	// undo restores what it changed in memory, in reverse order.
	undo []func()
}

type opKind int

const (
	opAccount     opKind = iota // insert account
	opBalance                   // set id's balance to balance
	opTransaction               // insert txn and its entries
	opIdempotency               // insert rec
	opStatement                 // run sql (RELEASE SAVEPOINT)
)

// op is a write not sent yet (small: the transaction keeps a slice of them).
type op struct {
	kind    opKind
	account *ledger.Account
	id      ledger.AccountID
	balance int64
	txn     *ledger.Transaction
	rec     *ledger.IdempotencyRecord
	sql     string
}

func newWork(conn *pgxpool.Conn) *work {
	return &work{
		conn:     conn,
		accounts: make(map[ledger.AccountID]ledger.Account),
		systems:  make(map[string]ledger.AccountID),
		keys:     make(map[idemKey]idemRecord),
		txns:     make(map[ledger.TransactionID]ledger.Transaction),
	}
}

// fail records err, a statement's failure (which aborts a PostgreSQL
// transaction), and returns it.
func (w *work) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// onUndo notes how to restore a change if the innermost savepoint rolls back.
func (w *work) onUndo(f func()) {
	if n := len(w.scopes); n > 0 {
		w.scopes[n-1].undo = append(w.scopes[n-1].undo, f)
	}
}

// set sets m[k] to v, undone with the innermost savepoint.
func set[K comparable, V any](w *work, m map[K]V, k K, v V) {
	prev, had := m[k]
	m[k] = v
	w.onUndo(func() {
		if had {
			m[k] = prev
		} else {
			delete(m, k)
		}
	})
}

// locked notes an account row read (and so locked) by the transaction. Inside
// a savepoint the note goes with it: a rolled-back SQL savepoint releases the
// locks taken in it.
func (w *work) locked(a ledger.Account) {
	set(w, w.accounts, a.ID, a)
	if a.System {
		set(w, w.systems, a.Currency, a.ID)
	}
}

func (t *writeTx) reader() reader { return reader{q: t.w.conn, lock: true} }

// Prefetch implements ledger.Prefetcher: if the transaction lacks anything the
// running request reads first, it reads, in one round trip, all that it lacks
// of what the requests offered read.
func (t *writeTx) Prefetch(ctx context.Context, reads iter.Seq[ledger.Prefetch]) error {
	w := t.w
	if w.err != nil {
		return w.err
	}
	var principals, keys, ids, currencies []string
	first := true
	for r := range reads {
		before := len(keys) + len(ids) + len(currencies)
		ik := idemKey{r.Principal, r.Key}
		if _, ok := w.keys[ik]; !ok {
			w.keys[ik] = idemRecord{} // a placeholder against duplicates, until read
			principals, keys = append(principals, r.Principal), append(keys, r.Key)
		}
		for _, id := range r.Accounts {
			if _, ok := w.accounts[id]; !ok && !slices.Contains(ids, string(id)) {
				ids = append(ids, string(id))
			}
		}
		if c := r.SystemCurrency; c != "" {
			if _, ok := w.systems[c]; !ok && !slices.Contains(currencies, c) {
				currencies = append(currencies, c)
			}
		}
		if first && len(keys)+len(ids)+len(currencies) == before {
			return nil // the running request has what it needs
		}
		first = false
	}
	// A statement per row, each the index lookup the server plans once for the
	// connection; a join of arrays to a table would be one statement, but its
	// plan (a hash join over the whole table, say) depends on the table's size
	// when the server planned it.
	b := &pgx.Batch{}
	for i := range keys {
		b.Queue(idempotencyRecord, principals[i], keys[i])
	}
	for _, id := range ids {
		b.Queue(accountByID+forUpdate, id)
	}
	for _, c := range currencies {
		b.Queue(systemAccount+forUpdate, c)
	}
	if b.Len() == 0 {
		return nil
	}
	br := w.conn.SendBatch(ctx, b)
	err := func() error {
		for i := range keys {
			rec, found, err := scanIdempotency(br.QueryRow())
			if err != nil {
				return err
			}
			rec.Principal, rec.Key = principals[i], keys[i]
			w.keys[idemKey{principals[i], keys[i]}] = idemRecord{rec: rec, found: found}
		}
		for range len(ids) + len(currencies) {
			a, err := scanAccount(br.QueryRow())
			switch {
			case err == nil:
				w.locked(a)
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("pgstore: read account: %w", err)
			}
		}
		return nil
	}()
	if closeErr := br.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("pgstore: prefetch: %w", closeErr)
	}
	if err != nil {
		for i := range keys {
			delete(w.keys, idemKey{principals[i], keys[i]})
		}
		return w.fail(err)
	}
	return nil
}

// Account implements ledger.ReadTx: a row the transaction holds, or read and
// locked.
func (t *writeTx) Account(ctx context.Context, id ledger.AccountID) (ledger.Account, bool, error) {
	w := t.w
	if w.err != nil {
		return ledger.Account{}, false, w.err
	}
	if a, ok := w.accounts[id]; ok {
		return a, true, nil
	}
	a, found, err := t.reader().Account(ctx, id)
	if err != nil {
		return ledger.Account{}, false, w.fail(err)
	}
	if found {
		w.locked(a)
	}
	return a, found, nil
}

// SystemAccount implements ledger.ReadTx like Account.
func (t *writeTx) SystemAccount(ctx context.Context, currency string) (ledger.Account, bool, error) {
	w := t.w
	if w.err != nil {
		return ledger.Account{}, false, w.err
	}
	if id, ok := w.systems[currency]; ok {
		return w.accounts[id], true, nil
	}
	a, found, err := t.reader().SystemAccount(ctx, currency)
	if err != nil {
		return ledger.Account{}, false, w.fail(err)
	}
	if found {
		w.locked(a)
	}
	return a, found, nil
}

// Idempotency implements ledger.ReadTx: a record the transaction read or
// created, or read now. What it read stays true until the transaction ends:
// every writer of a record holds the counter row first.
func (t *writeTx) Idempotency(ctx context.Context, principal, key string) (ledger.IdempotencyRecord, bool, error) {
	w := t.w
	if w.err != nil {
		return ledger.IdempotencyRecord{}, false, w.err
	}
	k := idemKey{principal, key}
	if r, ok := w.keys[k]; ok {
		return r.rec, r.found, nil
	}
	rec, found, err := t.reader().Idempotency(ctx, principal, key)
	if err != nil {
		return ledger.IdempotencyRecord{}, false, w.fail(err)
	}
	w.keys[k] = idemRecord{rec: rec, found: found}
	return rec, found, nil
}

// Transaction implements ledger.ReadTx: one the transaction created, or read.
func (t *writeTx) Transaction(ctx context.Context, id ledger.TransactionID) (ledger.Transaction, bool, error) {
	w := t.w
	if w.err != nil {
		return ledger.Transaction{}, false, w.err
	}
	if tr, ok := w.txns[id]; ok {
		tr.Entries = slices.Clone(tr.Entries)
		return tr, true, nil
	}
	tr, found, err := t.reader().Transaction(ctx, id)
	if err != nil {
		return ledger.Transaction{}, false, w.fail(err)
	}
	return tr, found, nil
}

// Accounts implements ledger.ReadTx on the server, after sending the writes.
func (t *writeTx) Accounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	return onServer(ctx, t.w, func() ([]ledger.Account, error) { return reader{q: t.w.conn}.Accounts(ctx, q) })
}

// EntriesAfter implements ledger.ReadTx on the server, after sending the writes.
func (t *writeTx) EntriesAfter(ctx context.Context, after int64, limit int) ([]ledger.Entry, error) {
	return onServer(ctx, t.w, func() ([]ledger.Entry, error) { return t.reader().EntriesAfter(ctx, after, limit) })
}

// TransactionsAfter implements ledger.ReadTx on the server, after sending the
// writes.
func (t *writeTx) TransactionsAfter(ctx context.Context, after int64, limit int) ([]ledger.KeyedTransaction, error) {
	return onServer(ctx, t.w, func() ([]ledger.KeyedTransaction, error) { return t.reader().TransactionsAfter(ctx, after, limit) })
}

// onServer runs a read that only the server can answer: it sends the writes kept
// in memory first, and a failed read breaks the transaction.
func onServer[T any](ctx context.Context, w *work, read func() (T, error)) (T, error) {
	var zero T
	if err := w.flush(ctx); err != nil {
		return zero, err
	}
	out, err := read()
	if err != nil {
		return zero, w.fail(err)
	}
	return out, nil
}

// CreateAccount implements ledger.Tx. An id (or a currency's system account)
// this transaction holds is refused at once; one that another transaction
// committed, at the commit (ledger.ErrConflict).
func (t *writeTx) CreateAccount(ctx context.Context, a ledger.Account) error {
	w := t.w
	if w.err != nil {
		return w.err
	}
	if _, ok := w.accounts[a.ID]; ok {
		return fmt.Errorf("pgstore: insert account %s: %w", a.ID, ledger.ErrDuplicateKey)
	}
	if _, ok := w.systems[a.Currency]; ok && a.System {
		return fmt.Errorf("pgstore: insert system account %s: %w", a.Currency, ledger.ErrDuplicateKey)
	}
	w.locked(a)
	w.ops = append(w.ops, op{kind: opAccount, account: &a})
	return nil
}

// SetBalance implements ledger.Tx. The schema's rule that only a system
// account goes negative is checked here too, so that a bad balance fails this
// call rather than the whole batch's commit.
func (t *writeTx) SetBalance(ctx context.Context, id ledger.AccountID, balance int64) error {
	w := t.w
	a, found, err := t.Account(ctx, id)
	if err != nil {
		return fmt.Errorf("pgstore: set balance of %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("pgstore: set balance of %s: no such account", id)
	}
	if balance < 0 && !a.System {
		return fmt.Errorf("pgstore: set balance of %s: %d is negative", id, balance)
	}
	a.Balance = balance
	set(w, w.accounts, id, a)
	w.ops = append(w.ops, op{kind: opBalance, id: id, balance: balance})
	return nil
}

// AllocateSequences implements ledger.Tx from the counter Update locked first
// and writes at the commit: no other writer allocates until this transaction
// ends, so sequences commit in order, and a rollback (of the transaction or a
// savepoint) hands its sequences out again.
func (t *writeTx) AllocateSequences(ctx context.Context, n int) (int64, error) {
	w := t.w
	if n < 1 {
		return 0, fmt.Errorf("pgstore: allocate %d sequences", n)
	}
	if w.err != nil {
		return 0, w.err
	}
	last := w.lastSeq
	w.lastSeq += int64(n)
	w.onUndo(func() { w.lastSeq = last })
	return last + 1, nil
}

// CreateTransaction implements ledger.Tx. The entries must have consecutive
// sequences.
func (t *writeTx) CreateTransaction(ctx context.Context, tr ledger.Transaction) error {
	w := t.w
	if w.err != nil {
		return w.err
	}
	if len(tr.Entries) == 0 {
		return fmt.Errorf("pgstore: transaction %s has no entries", tr.ID)
	}
	first := tr.Entries[0].Sequence
	for i, e := range tr.Entries {
		if e.Sequence != first+int64(i) {
			return fmt.Errorf("pgstore: transaction %s: entry sequences are not consecutive", tr.ID)
		}
	}
	if _, ok := w.txns[tr.ID]; ok {
		return fmt.Errorf("pgstore: insert transaction %s: %w", tr.ID, ledger.ErrDuplicateKey)
	}
	tr.Entries = slices.Clone(tr.Entries)
	set(w, w.txns, tr.ID, tr)
	w.ops = append(w.ops, op{kind: opTransaction, txn: &tr})
	return nil
}

// CreateIdempotency implements ledger.Tx. A key this transaction read as
// taken, or created, is refused at once; one that another transaction
// committed without this one reading it, at the commit (ledger.ErrConflict).
func (t *writeTx) CreateIdempotency(ctx context.Context, r ledger.IdempotencyRecord) error {
	w := t.w
	if w.err != nil {
		return w.err
	}
	if (r.TransactionID == "") == (r.RefusalCode == "") {
		return fmt.Errorf("pgstore: idempotency record %q needs a transaction or a refusal, not both", r.Key)
	}
	k := idemKey{r.Principal, r.Key}
	if cur, ok := w.keys[k]; ok && cur.found {
		return fmt.Errorf("pgstore: insert idempotency record: %w", ledger.ErrDuplicateKey)
	}
	set(w, w.keys, k, idemRecord{rec: r, found: true})
	w.ops = append(w.ops, op{kind: opIdempotency, rec: &r})
	return nil
}

// Savepoint implements ledger.Tx: see writeTx.
func (t *writeTx) Savepoint(ctx context.Context, fn func(ledger.Tx) error) error {
	w := t.w
	if w.err != nil {
		return w.err
	}
	s := &scope{mark: len(w.ops)}
	w.scopes = append(w.scopes, s)
	name := "sp" + strconv.Itoa(len(w.scopes))
	err := fn(t)
	w.scopes = w.scopes[:len(w.scopes)-1]
	if w.err != nil {
		// Whatever fn returned, the transaction is broken: never mistake this
		// for fn's own refusal.
		return w.err
	}
	if err == nil {
		if s.sent {
			w.ops = append(w.ops, op{kind: opStatement, sql: "RELEASE SAVEPOINT " + name})
		}
		w.onUndoAll(s.undo)
		return nil
	}
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	clear(w.ops[s.mark:])
	w.ops = w.ops[:s.mark]
	if s.sent {
		b := &pgx.Batch{}
		b.Queue("ROLLBACK TO SAVEPOINT " + name)
		b.Queue("RELEASE SAVEPOINT " + name)
		if rbErr := w.conn.SendBatch(ctx, b).Close(); rbErr != nil {
			return fmt.Errorf("pgstore: roll back savepoint %s after %v: %w", name, err, w.fail(rbErr))
		}
	}
	return err
}

// onUndoAll hands a released savepoint's undo to the one around it: rolling
// that one back undoes this one's changes too.
func (w *work) onUndoAll(undo []func()) {
	if n := len(w.scopes); n > 0 {
		w.scopes[n-1].undo = append(w.scopes[n-1].undo, undo...)
	}
}
