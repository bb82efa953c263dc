package writeset

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strconv"

	"mtlsbank/internal/ledger"
)

// Backend is a store's side of a write transaction: the reads of its database inside
// the transaction, and the sending of writes. A Tx reads through it only what it does
// not hold; every read and send error breaks the transaction (a failed statement
// aborts a PostgreSQL transaction, and the ledger never goes on after one).
type Backend interface {
	// ReadTx reads the database inside the transaction. An engine with concurrent
	// writers locks the account rows Account and SystemAccount return until the
	// transaction ends (ledger.Tx).
	ledger.ReadTx
	// Send runs steps in order inside the transaction: writes that must reach the
	// database before a read that only it can answer (a listing), and the statements
	// of savepoints. A write that meets a row another transaction committed returns
	// an error that wraps ledger.ErrConflict.
	Send(ctx context.Context, steps []Step) error
}

// BatchReader is implemented by a Backend whose every read is a round trip to a
// database server: it reads in one round trip what a batch of requests reads first
// (ledger.Prefetcher).
type BatchReader interface {
	// ReadMany reads the idempotency records of keys (found or not, in their order)
	// and the accounts of ids and the system accounts of currencies that exist,
	// locked as Account locks them.
	ReadMany(ctx context.Context, keys []Key, ids []ledger.AccountID, currencies []string) ([]Record, []ledger.Account, error)
}

// Key names an idempotency record.
type Key struct{ Principal, Key string }

// Record is an idempotency record as read: found or not.
type Record struct {
	Rec   ledger.IdempotencyRecord
	Found bool
}

// StepKind says what a Step does.
type StepKind int

// The kinds of Step.
const (
	// StepWrites writes its Group.
	StepWrites StepKind = iota
	// StepSavepoint opens the savepoint Name (SAVEPOINT).
	StepSavepoint
	// StepRelease releases the savepoint Name (RELEASE SAVEPOINT).
	StepRelease
	// StepRollback rolls the savepoint Name back and releases it (ROLLBACK TO
	// SAVEPOINT, then RELEASE SAVEPOINT).
	StepRollback
)

// Step is one thing a Backend sends.
type Step struct {
	Kind StepKind
	// Name is a savepoint's (sp1, sp2, ...: the depth of its nesting).
	Name string
	// Group is what a StepWrites writes.
	Group *Group
}

// Group is writes that no savepoint statement separates, by table, in the order
// their foreign keys need them sent: accounts, balances, transactions (each with its
// entries, whose sequences are consecutive), idempotency records.
type Group struct {
	Accounts []*ledger.Account
	// Balances are the last balance set of each account, in the order first set.
	Balances     []Balance
	Transactions []*ledger.Transaction
	Records      []*ledger.IdempotencyRecord
}

// Balance is an account's new balance.
type Balance struct {
	ID      ledger.AccountID
	Balance int64
}

// entries reports whether the group writes entries.
func (g *Group) entries() bool { return len(g.Transactions) > 0 }

// Tx implements ledger.Tx (and ledger.Prefetcher) for a store's Update. What it
// keeps stays right because the store's transaction holds its rows until it ends:
// the sequence counter (no other writer allocates meanwhile) and the account rows it
// read (SQLite's write lock holds the whole database; PostgreSQL's FOR UPDATE the rows).
//
// A savepoint costs nothing while its writes are in memory: rolling it back drops them
// and undoes what it changed in memory. Only a savepoint still open when the writes
// must be sent early (a read that needs them in the database, as a listing does)
// becomes an SQL SAVEPOINT.
type Tx struct{ w *work }

var (
	_ ledger.Tx         = (*Tx)(nil)
	_ ledger.Prefetcher = (*Tx)(nil)
)

// New returns the write transaction of a store's Update on backend, whose sequence
// counter stood at counter when the transaction took it.
func New(backend Backend, counter int64) *Tx {
	return &Tx{w: &work{
		b:        backend,
		counter:  counter,
		lastSeq:  counter,
		accounts: make(map[ledger.AccountID]ledger.Account),
		systems:  make(map[string]ledger.AccountID),
		keys:     make(map[Key]Record),
		txns:     make(map[ledger.TransactionID]ledger.Transaction),
	}}
}

// Err returns the failure that broke the transaction, if any: the store must roll
// it back, whatever the function it ran returned.
func (t *Tx) Err() error { return t.w.err }

// Counter returns the sequence counter as taken (New) and as it must be written at
// the commit; they differ when the transaction allocated sequences.
func (t *Tx) Counter() (taken, last int64) { return t.w.counter, t.w.lastSeq }

// Pending returns the writes not sent yet, each open savepoint's SAVEPOINT before its
// first write, and marks them sent: what the store sends before it commits.
func (t *Tx) Pending() []Step { return t.w.pending() }

// SentEntries reports whether writes sent so far (Pending included) carry entries.
func (t *Tx) SentEntries() bool { return t.w.sentEntries }

// work is the state of one write transaction, shared by its savepoints.
type work struct {
	b Backend
	// err, once set, broke the transaction: everything that follows fails with
	// it, and the store rolls back.
	err error
	// counter is the sequence counter as taken, lastSeq the last sequence handed
	// out since.
	counter, lastSeq int64
	// accounts are the rows this transaction read (and so locked) or created, as
	// it has them now; systems finds the system account of a currency there.
	accounts map[ledger.AccountID]ledger.Account
	systems  map[string]ledger.AccountID
	// keys are the idempotency records read (found or not) or created.
	keys map[Key]Record
	// txns are the transactions created.
	txns map[ledger.TransactionID]ledger.Transaction
	// ops are the writes not sent yet, in order.
	ops []op
	// scopes are the open savepoints, innermost last.
	scopes []*scope
	// sentEntries: writes with entries were handed to the store.
	sentEntries bool
}

// scope is an open savepoint.
type scope struct {
	// mark is where its writes begin in ops.
	mark int
	// sent: its writes began to reach the database, after an SQL SAVEPOINT.
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
	opRelease                   // release the savepoint name
)

// op is a write not sent yet (small: the transaction keeps a slice of them).
type op struct {
	kind    opKind
	account *ledger.Account
	id      ledger.AccountID
	balance int64
	txn     *ledger.Transaction
	rec     *ledger.IdempotencyRecord
	name    string
}

// fail records err, a read's or a send's failure, and returns it.
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

// onUndoAll hands a released savepoint's undo to the one around it: rolling that one
// back undoes this one's changes too.
func (w *work) onUndoAll(undo []func()) {
	if n := len(w.scopes); n > 0 {
		w.scopes[n-1].undo = append(w.scopes[n-1].undo, undo...)
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

// locked notes an account row read (and so locked) by the transaction. Inside a
// savepoint the note goes with it: a rolled-back SQL savepoint releases the locks
// taken in it.
func (w *work) locked(a ledger.Account) {
	set(w, w.accounts, a.ID, a)
	if a.System {
		set(w, w.systems, a.Currency, a.ID)
	}
}

// Prefetch implements ledger.Prefetcher: if the transaction lacks anything the running
// request reads first, and the backend reads in batches (BatchReader), it reads in one
// go all that it lacks of what the requests offered read. Without a BatchReader it
// reads nothing ahead: each read then costs what it would anyway.
func (t *Tx) Prefetch(ctx context.Context, reads iter.Seq[ledger.Prefetch]) error {
	w := t.w
	if w.err != nil {
		return w.err
	}
	br, ok := w.b.(BatchReader)
	if !ok {
		return nil
	}
	var keys []Key
	var ids []ledger.AccountID
	var currencies []string
	first := true
	for r := range reads {
		before := len(keys) + len(ids) + len(currencies)
		k := Key{r.Principal, r.Key}
		if _, ok := w.keys[k]; !ok {
			w.keys[k] = Record{} // a placeholder against duplicates, until read
			keys = append(keys, k)
		}
		for _, id := range r.Accounts {
			if _, ok := w.accounts[id]; !ok && !slices.Contains(ids, id) {
				ids = append(ids, id)
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
	if len(keys)+len(ids)+len(currencies) == 0 {
		return nil
	}
	recs, accounts, err := br.ReadMany(ctx, keys, ids, currencies)
	if err == nil && len(recs) != len(keys) {
		err = fmt.Errorf("writeset: %d idempotency records read for %d keys", len(recs), len(keys))
	}
	if err != nil {
		for _, k := range keys {
			delete(w.keys, k)
		}
		return w.fail(err)
	}
	for i, k := range keys {
		r := recs[i]
		r.Rec.Principal, r.Rec.Key = k.Principal, k.Key
		w.keys[k] = r
	}
	for _, a := range accounts {
		w.locked(a)
	}
	return nil
}

// Account implements ledger.ReadTx: a row the transaction holds, or read (and locked).
func (t *Tx) Account(ctx context.Context, id ledger.AccountID) (ledger.Account, bool, error) {
	w := t.w
	if w.err != nil {
		return ledger.Account{}, false, w.err
	}
	if a, ok := w.accounts[id]; ok {
		return a, true, nil
	}
	a, found, err := w.b.Account(ctx, id)
	if err != nil {
		return ledger.Account{}, false, w.fail(err)
	}
	if found {
		w.locked(a)
	}
	return a, found, nil
}

// SystemAccount implements ledger.ReadTx like Account.
func (t *Tx) SystemAccount(ctx context.Context, currency string) (ledger.Account, bool, error) {
	w := t.w
	if w.err != nil {
		return ledger.Account{}, false, w.err
	}
	if id, ok := w.systems[currency]; ok {
		return w.accounts[id], true, nil
	}
	a, found, err := w.b.SystemAccount(ctx, currency)
	if err != nil {
		return ledger.Account{}, false, w.fail(err)
	}
	if found {
		w.locked(a)
	}
	return a, found, nil
}

// Idempotency implements ledger.ReadTx: a record the transaction read or created, or
// read now. What it read stays true until the transaction ends: every writer of a
// record holds the sequence counter first.
func (t *Tx) Idempotency(ctx context.Context, principal, key string) (ledger.IdempotencyRecord, bool, error) {
	w := t.w
	if w.err != nil {
		return ledger.IdempotencyRecord{}, false, w.err
	}
	k := Key{principal, key}
	if r, ok := w.keys[k]; ok {
		return r.Rec, r.Found, nil
	}
	rec, found, err := w.b.Idempotency(ctx, principal, key)
	if err != nil {
		return ledger.IdempotencyRecord{}, false, w.fail(err)
	}
	w.keys[k] = Record{Rec: rec, Found: found}
	return rec, found, nil
}

// Transaction implements ledger.ReadTx: one the transaction created, or read.
func (t *Tx) Transaction(ctx context.Context, id ledger.TransactionID) (ledger.Transaction, bool, error) {
	w := t.w
	if w.err != nil {
		return ledger.Transaction{}, false, w.err
	}
	if tr, ok := w.txns[id]; ok {
		tr.Entries = slices.Clone(tr.Entries)
		return tr, true, nil
	}
	tr, found, err := w.b.Transaction(ctx, id)
	if err != nil {
		return ledger.Transaction{}, false, w.fail(err)
	}
	return tr, found, nil
}

// Accounts implements ledger.ReadTx in the database, after sending the writes.
func (t *Tx) Accounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	return inDatabase(ctx, t.w, func() ([]ledger.Account, error) { return t.w.b.Accounts(ctx, q) })
}

// EntriesAfter implements ledger.ReadTx in the database, after sending the writes.
func (t *Tx) EntriesAfter(ctx context.Context, after int64, limit int) ([]ledger.Entry, error) {
	return inDatabase(ctx, t.w, func() ([]ledger.Entry, error) { return t.w.b.EntriesAfter(ctx, after, limit) })
}

// TransactionsAfter implements ledger.ReadTx in the database, after sending the
// writes.
func (t *Tx) TransactionsAfter(ctx context.Context, after int64, limit int) ([]ledger.KeyedTransaction, error) {
	return inDatabase(ctx, t.w, func() ([]ledger.KeyedTransaction, error) { return t.w.b.TransactionsAfter(ctx, after, limit) })
}

// inDatabase runs a read that only the database can answer: it sends the writes kept
// in memory first, and a failed read breaks the transaction.
func inDatabase[T any](ctx context.Context, w *work, read func() (T, error)) (T, error) {
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

// CreateAccount implements ledger.Tx. An id (or a currency's system account) this
// transaction holds is refused at once; one that another transaction committed, when
// the store sends it (ledger.ErrConflict).
func (t *Tx) CreateAccount(ctx context.Context, a ledger.Account) error {
	w := t.w
	if w.err != nil {
		return w.err
	}
	if _, ok := w.accounts[a.ID]; ok {
		return fmt.Errorf("writeset: insert account %s: %w", a.ID, ledger.ErrDuplicateKey)
	}
	if _, ok := w.systems[a.Currency]; ok && a.System {
		return fmt.Errorf("writeset: insert system account %s: %w", a.Currency, ledger.ErrDuplicateKey)
	}
	w.locked(a)
	w.ops = append(w.ops, op{kind: opAccount, account: &a})
	return nil
}

// SetBalance implements ledger.Tx. The schema's rule that only a system account goes
// negative is checked here too, so that a bad balance fails this call rather than the
// whole batch's commit.
func (t *Tx) SetBalance(ctx context.Context, id ledger.AccountID, balance int64) error {
	w := t.w
	a, found, err := t.Account(ctx, id)
	if err != nil {
		return fmt.Errorf("writeset: set balance of %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("writeset: set balance of %s: no such account", id)
	}
	if balance < 0 && !a.System {
		return fmt.Errorf("writeset: set balance of %s: %d is negative", id, balance)
	}
	a.Balance = balance
	set(w, w.accounts, id, a)
	w.ops = append(w.ops, op{kind: opBalance, id: id, balance: balance})
	return nil
}

// AllocateSequences implements ledger.Tx from the counter the store took at the start
// and writes at the commit: no other writer allocates until this transaction ends, so
// sequences commit in order, and a rollback (of the transaction or a savepoint) hands
// its sequences out again.
func (t *Tx) AllocateSequences(ctx context.Context, n int) (int64, error) {
	w := t.w
	if n < 1 {
		return 0, fmt.Errorf("writeset: allocate %d sequences", n)
	}
	if w.err != nil {
		return 0, w.err
	}
	last := w.lastSeq
	w.lastSeq += int64(n)
	w.onUndo(func() { w.lastSeq = last })
	return last + 1, nil
}

// CreateTransaction implements ledger.Tx. The entries must have consecutive sequences.
func (t *Tx) CreateTransaction(ctx context.Context, tr ledger.Transaction) error {
	w := t.w
	if w.err != nil {
		return w.err
	}
	if len(tr.Entries) == 0 {
		return fmt.Errorf("writeset: transaction %s has no entries", tr.ID)
	}
	first := tr.Entries[0].Sequence
	for i, e := range tr.Entries {
		if e.Sequence != first+int64(i) {
			return fmt.Errorf("writeset: transaction %s: entry sequences are not consecutive", tr.ID)
		}
	}
	if _, ok := w.txns[tr.ID]; ok {
		return fmt.Errorf("writeset: insert transaction %s: %w", tr.ID, ledger.ErrDuplicateKey)
	}
	tr.Entries = slices.Clone(tr.Entries)
	set(w, w.txns, tr.ID, tr)
	w.ops = append(w.ops, op{kind: opTransaction, txn: &tr})
	return nil
}

// CreateIdempotency implements ledger.Tx. A key this transaction read as taken, or
// created, is refused at once; one that another transaction committed without this
// one reading it, when the store sends it (ledger.ErrConflict).
func (t *Tx) CreateIdempotency(ctx context.Context, r ledger.IdempotencyRecord) error {
	w := t.w
	if w.err != nil {
		return w.err
	}
	if (r.TransactionID == "") == (r.RefusalCode == "") {
		return fmt.Errorf("writeset: idempotency record %q needs a transaction or a refusal, not both", r.Key)
	}
	k := Key{r.Principal, r.Key}
	if cur, ok := w.keys[k]; ok && cur.Found {
		return fmt.Errorf("writeset: insert idempotency record: %w", ledger.ErrDuplicateKey)
	}
	set(w, w.keys, k, Record{Rec: r, Found: true})
	w.ops = append(w.ops, op{kind: opIdempotency, rec: &r})
	return nil
}

// Savepoint implements ledger.Tx: see Tx.
func (t *Tx) Savepoint(ctx context.Context, fn func(ledger.Tx) error) error {
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
		// Whatever fn returned, the transaction is broken: never mistake this for
		// fn's own refusal.
		return w.err
	}
	if err == nil {
		if s.sent {
			w.ops = append(w.ops, op{kind: opRelease, name: name})
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
		if rbErr := w.b.Send(ctx, []Step{{Kind: StepRollback, Name: name}}); rbErr != nil {
			return fmt.Errorf("writeset: roll back savepoint %s after %v: %w", name, err, w.fail(rbErr))
		}
	}
	return err
}

// flush sends the writes not sent yet, before a read that needs them in the database.
func (w *work) flush(ctx context.Context) error {
	if w.err != nil {
		return w.err
	}
	if len(w.ops) == 0 {
		return nil
	}
	if err := w.b.Send(ctx, w.pending()); err != nil {
		return w.fail(err)
	}
	return nil
}

// pending turns the writes not sent yet into steps: each open savepoint's SAVEPOINT
// before its first write, releases where they were, and the writes between them
// grouped by table (Group). It marks them sent.
func (w *work) pending() []Step {
	var steps []Step
	var g grouping
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
			steps = g.end(steps)
			steps = append(steps, Step{Kind: StepSavepoint, Name: "sp" + strconv.Itoa(next+1)})
			s.sent = true
		}
		if o.kind == opRelease {
			steps = g.end(steps)
			steps = append(steps, Step{Kind: StepRelease, Name: o.name})
			continue
		}
		g.add(o)
	}
	steps = g.end(steps)
	clear(w.ops)
	w.ops = w.ops[:0]
	for _, s := range w.scopes {
		s.mark = 0
	}
	for _, s := range steps {
		if s.Kind == StepWrites && s.Group.entries() {
			w.sentEntries = true
		}
	}
	return steps
}

// grouping gathers writes into a Group, each account's balance once.
type grouping struct {
	g        *Group
	balances map[ledger.AccountID]int // index in g.Balances
}

func (gr *grouping) add(o op) {
	if gr.g == nil {
		gr.g = &Group{}
	}
	g := gr.g
	switch o.kind {
	case opAccount:
		g.Accounts = append(g.Accounts, o.account)
	case opBalance:
		if i, ok := gr.balances[o.id]; ok {
			g.Balances[i].Balance = o.balance
			return
		}
		if gr.balances == nil {
			gr.balances = make(map[ledger.AccountID]int)
		}
		gr.balances[o.id] = len(g.Balances)
		g.Balances = append(g.Balances, Balance{ID: o.id, Balance: o.balance})
	case opTransaction:
		g.Transactions = append(g.Transactions, o.txn)
	case opIdempotency:
		g.Records = append(g.Records, o.rec)
	}
}

// end appends the group gathered so far, if any, to steps and starts a new one.
func (gr *grouping) end(steps []Step) []Step {
	if gr.g != nil {
		steps = append(steps, Step{Kind: StepWrites, Group: gr.g})
	}
	*gr = grouping{}
	return steps
}
