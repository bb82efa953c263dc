package payments

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"mtlsbank/internal/money"
)

// ErrLimitSyntax means a limits text is not a comma-separated list of CODE:AMOUNT.
var ErrLimitSyntax = errors.New("not a CODE:AMOUNT list")

// Limits caps the amount of one payment per currency for callers limited to their
// own accounts (customers). A currency without a limit is refused to them: a new
// currency must be allowed explicitly, not by forgetting it. The zero value allows
// nothing.
type Limits struct {
	max map[string]int64 // currency -> largest allowed amount in minor units
}

// ParseLimits parses a comma-separated list such as "EUR:1000.00,USD:1000.00"
// (amounts in major units, exactly as money.Parse reads them). An empty text is no
// limit at all: customers may not pay in any currency.
func ParseLimits(text string) (Limits, error) {
	l := Limits{max: make(map[string]int64)}
	if strings.TrimSpace(text) == "" {
		return l, nil
	}
	for _, item := range strings.Split(text, ",") {
		item = strings.TrimSpace(item)
		code, amount, ok := strings.Cut(item, ":")
		if !ok {
			return Limits{}, fmt.Errorf("customer limit %q: %w", item, ErrLimitSyntax)
		}
		minor, err := money.Parse(amount, code)
		if err != nil {
			return Limits{}, fmt.Errorf("customer limit %q: %w", item, err)
		}
		if _, dup := l.max[code]; dup {
			return Limits{}, fmt.Errorf("customer limit %q: currency %s given twice", item, code)
		}
		l.max[code] = minor
	}
	return l, nil
}

// Max returns the largest amount, in minor units, allowed in currency, and false
// when the currency has no limit (and is therefore not allowed).
func (l Limits) Max(currency string) (int64, bool) {
	m, ok := l.max[currency]
	return m, ok
}

// Currencies returns the currencies that have a limit, sorted.
func (l Limits) Currencies() []string {
	codes := make([]string, 0, len(l.max))
	for c := range l.max {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	return codes
}

// Set replaces l with ParseLimits(text), so that *Limits is a flag.Value.
func (l *Limits) Set(text string) error {
	parsed, err := ParseLimits(text)
	if err != nil {
		return err
	}
	*l = parsed
	return nil
}

// String writes the limits back in the form ParseLimits reads, sorted by currency.
func (l Limits) String() string {
	codes := l.Currencies()
	parts := make([]string, len(codes))
	for i, c := range codes {
		cur, _ := money.Lookup(c)
		parts[i] = c + ":" + cur.FormatMinor(l.max[c])
	}
	return strings.Join(parts, ",")
}
