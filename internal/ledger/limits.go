package ledger

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"mtlsbank/internal/money"
)

// Money limits. The ledger bounds two things per currency, both in minor units:
//
//   - MaxAmount: the largest amount of one Deposit, Withdraw or Transfer, whoever asks
//     (tellers and the payments service included). A larger request is malformed for
//     this bank: InvalidArgument, not recorded under its idempotency key.
//   - MaxSupply: the most money of the currency that customer accounts may hold
//     together. A deposit that would pass it is refused with ErrSupplyLimit, decided
//     in the deposit's own write transaction and recorded under its key like an
//     overdraft. Withdrawals and transfers never raise the total and are never refused
//     for it, so customers can always take their money out.
//
// Why no sequence of accepted requests takes a balance to an int64 limit. For one
// currency, let S be the balance of its system account and c_1..c_n those of its
// customer accounts.
//
//  1. Double entry: every transaction writes one debit and one credit of the same
//     amount in the same currency, so S + c_1 + ... + c_n = 0 at all times, that is
//     S = -(c_1 + ... + c_n) = -T, where T is the money customers hold.
//  2. Customer balances never go negative (the overdraft check, and a CHECK in the
//     schema): c_i >= 0 for all i.
//  3. T only grows by deposits, and a deposit of a is accepted only if T + a <= cap,
//     with T read as -S in the same transaction that writes the deposit (the ledger
//     has one writer, and a multi-writer store locks S: see Tx). Withdrawals lower T;
//     transfers leave it unchanged.
//  4. So, by induction over the accepted requests, 0 <= T <= cap, and by 2 every
//     customer balance satisfies 0 <= c_i <= T <= cap, while -cap <= S <= 0.
//  5. cap <= MaxLimit = 10^18 < MaxInt64/9, so every balance stays within
//     [-10^18, 10^18], and the sums the checks compute (balance + amount, with both
//     terms <= 10^18) cannot overflow either.
//
// A database from before these limits (or whose cap was lowered) may hold T > cap:
// then deposits in that currency are refused until withdrawals bring T under the cap,
// and the int64 overflow checks in apply remain as the last line.

// Defaults and bounds of the money limits.
const (
	// DefaultMaxAmount is the default largest amount of one request, in whole major
	// units of any currency: one billion (1,000,000,000.00 EUR, 1,000,000,000 JPY).
	// Deployments set their own per currency; this default only keeps absurd amounts
	// out.
	DefaultMaxAmount = 1_000_000_000
	// DefaultMaxSupply is the default most money of one currency that all customer
	// accounts may hold together, in whole major units of any currency: 10^14, which
	// is 10^18 minor units for the currencies with four decimals (CLF, UYW).
	DefaultMaxSupply = 100_000_000_000_000
	// MaxLimit is the largest limit accepted, in minor units: 10^18, about a ninth
	// of math.MaxInt64, so that no balance and no sum of a balance and an amount can
	// reach an int64 limit.
	MaxLimit = 1_000_000_000_000_000_000
)

// ErrLimitSyntax means a limits text is not a comma-separated list of CODE:AMOUNT.
var ErrLimitSyntax = errors.New("not a comma-separated list of CODE:AMOUNT (or *:AMOUNT)")

// CurrencyLimits is a bound per currency in minor units: an explicit one for the
// currencies listed, and, for every other currency, a default given in whole major
// units and scaled by the currency's exponent. It is a flag.Value: see Set.
type CurrencyLimits struct {
	perCurrency  map[string]int64 // currency code -> bound in minor units
	defaultMajor int64            // bound of every other currency, in major units
}

// NewCurrencyLimits returns limits of defaultMajor whole major units in every
// currency.
func NewCurrencyLimits(defaultMajor int64) CurrencyLimits {
	return CurrencyLimits{defaultMajor: defaultMajor}
}

// DefaultMaxAmounts returns the default per-request maximum: DefaultMaxAmount whole
// major units in every currency.
func DefaultMaxAmounts() CurrencyLimits { return NewCurrencyLimits(DefaultMaxAmount) }

// DefaultMaxSupplies returns the default cap on the money customers hold together:
// DefaultMaxSupply whole major units in every currency.
func DefaultMaxSupplies() CurrencyLimits { return NewCurrencyLimits(DefaultMaxSupply) }

// Max returns the bound of currency in minor units, and false if currency is not an
// active ISO 4217 code or its bound does not fit under MaxLimit.
func (l CurrencyLimits) Max(currency string) (int64, bool) {
	if m, ok := l.perCurrency[currency]; ok {
		return m, true
	}
	c, ok := money.Lookup(currency)
	if !ok {
		return 0, false
	}
	return scale(l.defaultMajor, c.Exponent)
}

// scale returns major whole units in minor units of a currency with exponent
// decimals, and false if that is more than MaxLimit.
func scale(major int64, exponent int) (int64, bool) {
	v := major
	for range exponent {
		if v > MaxLimit/10 {
			return 0, false
		}
		v *= 10
	}
	return v, v <= MaxLimit
}

// Set reads a comma-separated list of CODE:AMOUNT, amounts in major units exactly as
// money.Parse reads them ("EUR:1000000.00,JPY:150000000"), plus optionally *:AMOUNT,
// a whole number of major units for every currency not listed ("*:1000000"). The
// listed currencies replace those of l; without a *:AMOUNT, l's default stays. Every
// bound must be positive and at most MaxLimit minor units. On error l is unchanged.
func (l *CurrencyLimits) Set(text string) error {
	out := CurrencyLimits{perCurrency: make(map[string]int64), defaultMajor: l.defaultMajor}
	seenDefault := false
	for item := range strings.SplitSeq(text, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		code, amount, ok := strings.Cut(item, ":")
		if !ok {
			return fmt.Errorf("limit %q: %w", item, ErrLimitSyntax)
		}
		if code == "*" {
			if seenDefault {
				return fmt.Errorf("limit %q: the default (*) is given twice", item)
			}
			seenDefault = true
			major, err := strconv.ParseInt(amount, 10, 64)
			if err != nil || major < 1 || amount != strconv.FormatInt(major, 10) {
				return fmt.Errorf("limit %q: the default must be a positive whole number of major units", item)
			}
			for _, c := range money.Codes() {
				cur, _ := money.Lookup(c)
				if _, ok := scale(major, cur.Exponent); !ok {
					return fmt.Errorf("limit %q: %d major units of %s are more than %d minor units", item, major, c, int64(MaxLimit))
				}
			}
			out.defaultMajor = major
			continue
		}
		minor, err := money.Parse(amount, code)
		if err != nil {
			return fmt.Errorf("limit %q: %w", item, err)
		}
		switch _, dup := out.perCurrency[code]; {
		case dup:
			return fmt.Errorf("limit %q: currency %s is given twice", item, code)
		case minor < 1:
			return fmt.Errorf("limit %q: must be positive", item)
		case minor > MaxLimit:
			return fmt.Errorf("limit %q: more than %d minor units", item, int64(MaxLimit))
		}
		out.perCurrency[code] = minor
	}
	*l = out
	return nil
}

// String writes l back in the form Set reads, the default first, then the listed
// currencies sorted by code.
func (l *CurrencyLimits) String() string {
	if l == nil {
		return ""
	}
	parts := []string{"*:" + strconv.FormatInt(l.defaultMajor, 10)}
	for _, code := range slices.Sorted(maps.Keys(l.perCurrency)) {
		c, _ := money.Lookup(code)
		parts = append(parts, code+":"+c.FormatMinor(l.perCurrency[code]))
	}
	return strings.Join(parts, ",")
}

// CheckLimits reports whether New accepts amounts and supplies as WithMaxAmount and
// WithMaxSupply: every active currency must have 1 <= max amount <= max supply <=
// MaxLimit, so that the proof above holds for all of them. A service calls it when it
// validates its flags, before it opens anything.
func CheckLimits(amounts, supplies CurrencyLimits) error {
	var errs []error
	for _, code := range money.Codes() {
		amount, okA := amounts.Max(code)
		supply, okS := supplies.Max(code)
		switch {
		case !okA || amount < 1:
			errs = append(errs, fmt.Errorf("ledger: max amount of %s is not between 1 and %d minor units", code, int64(MaxLimit)))
		case !okS || supply < 1:
			errs = append(errs, fmt.Errorf("ledger: max supply of %s is not between 1 and %d minor units", code, int64(MaxLimit)))
		case amount > supply:
			errs = append(errs, fmt.Errorf("ledger: max amount of %s (%s) is more than its max supply (%s)",
				code, money.Format(amount, code), money.Format(supply, code)))
		}
	}
	return errors.Join(errs...)
}

// supplyHeadroom is how much more money of a currency customers may hold: the cap
// minus what they hold now, which is minus the balance of the system account
// (double entry). It is 0 when they hold the cap or more already.
func supplyHeadroom(system, capacity int64) int64 {
	switch {
	case system >= 0: // customers hold nothing (a positive system balance cannot happen)
		return capacity
	case system < -capacity:
		return 0
	default:
		return capacity + system
	}
}
