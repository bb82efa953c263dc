package ledger

import (
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/groupcommit"
)

// Option configures a Ledger.
type Option func(*config)

type config struct {
	trustDomain spiffeid.TrustDomain
	clock       func() time.Time
	maxBatch    int
	observe     groupcommit.Observer
	queueSize   int
	watchPage   int
	maxAmount   CurrencyLimits
	maxSupply   CurrencyLimits
	// accountCache is the most accounts GetAccount keeps in memory; 0: none.
	accountCache int
}

// defaults is the one place where option defaults are set.
func defaults() config {
	return config{
		trustDomain: spiffeid.RequireTrustDomainFromString("bank.local"),
		clock:       time.Now,
		maxBatch:    256,
		queueSize:   1024,
		watchPage:   256,
		maxAmount:   DefaultMaxAmounts(),
		maxSupply:   DefaultMaxSupplies(),
	}
}

// validate checks the options the ledger uses itself; groupcommit.New checks
// the committer's (max batch, queue size).
func (c config) validate() error {
	switch {
	case c.trustDomain.IsZero():
		return fmt.Errorf("ledger: trust domain is empty")
	case c.clock == nil:
		return fmt.Errorf("ledger: clock is nil")
	case c.watchPage < 1:
		return fmt.Errorf("ledger: watch page size %d is not positive", c.watchPage)
	case c.accountCache < 0:
		return fmt.Errorf("ledger: account cache size %d is negative", c.accountCache)
	}
	return CheckLimits(c.maxAmount, c.maxSupply)
}

// WithTrustDomain sets the SPIFFE trust domain that owners and callers must
// belong to. The default is bank.local.
func WithTrustDomain(td spiffeid.TrustDomain) Option {
	return func(c *config) { c.trustDomain = td }
}

// WithClock sets the source of timestamps. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.clock = now }
}

// WithMaxBatch bounds how many write requests share one database
// transaction and one commit. The default is 256; 1 turns group commit off.
func WithMaxBatch(n int) Option {
	return func(c *config) { c.maxBatch = n }
}

// WithCommitObserver has fn told, after each batch of write requests ran in one
// transaction, how many it had and how long the transaction took, commit and fsync
// included (groupcommit.WithObserver; the services export it as the bank_commit_*
// metrics). fn runs on the committer's goroutine and must be quick.
func WithCommitObserver(fn groupcommit.Observer) Option {
	return func(c *config) { c.observe = fn }
}

// WithQueueSize sets how many write requests may wait for the committer
// before callers block. The default is 1024.
func WithQueueSize(n int) Option {
	return func(c *config) { c.queueSize = n }
}

// WithWatchPageSize sets how many entries a watcher reads from the store at
// a time, which bounds its memory. The default is 256.
func WithWatchPageSize(n int) Option {
	return func(c *config) { c.watchPage = n }
}

// WithAccountCache makes GetAccount answer from memory, keeping up to n accounts
// (0, the default: no cache). It is coherent only when this ledger is the only writer
// of its store: the committer brings every account a transaction wrote up to date
// before it answers any of that transaction's callers, so a caller that got the answer
// to a write reads it back. New refuses it unless the store is a SoleWriter that holds
// its database alone (an SQLite store opened WithExclusive), so never on a database
// several processes write (the replicas of a service on one PostgreSQL database).
func WithAccountCache(n int) Option {
	return func(c *config) { c.accountCache = n }
}

// DefaultAccountCache is the account cache size services use on SQLite: an account is
// about 300 bytes in it, so 100,000 accounts take about 30 MB.
const DefaultAccountCache = 100_000

// WithMaxAmount sets the largest amount of one Deposit, Withdraw or Transfer, per
// currency. The default is DefaultMaxAmounts: one billion major units. New refuses
// a currency whose maximum is more than its max supply.
func WithMaxAmount(l CurrencyLimits) Option {
	return func(c *config) { c.maxAmount = l }
}

// WithMaxSupply sets the most money of each currency that customer accounts may
// hold together; a deposit beyond it is refused with ErrSupplyLimit. The default is
// DefaultMaxSupplies: 10^14 major units. Lowering it below what customers hold
// refuses deposits in that currency until withdrawals bring the total under it.
func WithMaxSupply(l CurrencyLimits) Option {
	return func(c *config) { c.maxSupply = l }
}
