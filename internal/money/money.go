package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Errors returned by Parse and ParseSigned, wrapped with the offending input.
var (
	// ErrUnknownCurrency means the code is not an active ISO 4217 currency.
	ErrUnknownCurrency = errors.New("unknown currency code")
	// ErrSyntax means the text is not a plain decimal number such as "25" or "25.50".
	ErrSyntax = errors.New("not a decimal amount")
	// ErrTooPrecise means the text has more decimal places than the currency's minor unit.
	ErrTooPrecise = errors.New("more decimal places than the currency has")
	// ErrSign means the text has a sign where none is allowed.
	ErrSign = errors.New("sign not allowed")
	// ErrOverflow means the amount does not fit in int64 minor units.
	ErrOverflow = errors.New("amount out of range")
)

// Currency is an active ISO 4217 currency.
type Currency struct {
	// Code is the three upper-case letters, such as "EUR".
	Code string
	// Exponent is the number of decimal places of the minor unit:
	// 2 for EUR (cents), 0 for JPY, 3 for KWD.
	Exponent int
	// Name is the English name of the currency.
	Name string
}

// Lookup returns the active ISO 4217 currency with the given code. The code
// must be exactly three upper-case letters; "eur" is not found.
func Lookup(code string) (Currency, bool) {
	return lookup(code)
}

// Codes returns the codes of every currency Lookup knows, sorted. The slice is
// the caller's to keep.
func Codes() []string {
	return strings.Fields(codeList)
}

// Amount is a quantity of money: integer minor units of one currency, so that
// 25.50 EUR is Amount{Currency: "EUR", Minor: 2550}.
type Amount struct {
	// Currency is the ISO 4217 code.
	Currency string
	// Minor is the amount in minor units (cents for EUR, yen for JPY).
	Minor int64
}

// String formats the amount as Format does, such as "25.50 EUR".
func (a Amount) String() string {
	return Format(a.Minor, a.Currency)
}

// ParseAmount is Parse returning an Amount.
func ParseAmount(major, currency string) (Amount, error) {
	minor, err := Parse(major, currency)
	if err != nil {
		return Amount{}, err
	}
	return Amount{Currency: currency, Minor: minor}, nil
}

// Parse converts a non-negative decimal amount in major units, such as "25",
// "25.5", "25.00" or "0.01", to minor units of currency, exactly. It accepts
// ASCII digits with at most one decimal point that has digits on both sides,
// and refuses signs, spaces, exponents, digit separators, more decimal places
// than the currency has (even zeros: "25.000" EUR and "25.0" JPY), and amounts
// beyond math.MaxInt64 minor units.
func Parse(major, currency string) (int64, error) {
	return parse(major, currency, false)
}

// ParseSigned is Parse that also accepts a leading minus sign, so that it
// reads back everything Format writes.
func ParseSigned(major, currency string) (int64, error) {
	return parse(major, currency, true)
}

func parse(s, code string, signed bool) (int64, error) {
	c, ok := lookup(code)
	if !ok {
		return 0, fmt.Errorf("parse amount %q: currency %q: %w", clip(s), clip(code), ErrUnknownCurrency)
	}
	body, neg := s, false
	if body != "" && (body[0] == '-' || body[0] == '+') {
		if !signed || body[0] == '+' {
			return 0, fmt.Errorf("parse amount %q: %w", clip(s), ErrSign)
		}
		body, neg = body[1:], true
	}
	whole, frac, hasPoint := strings.Cut(body, ".")
	if !digits(whole) || (hasPoint && !digits(frac)) {
		return 0, fmt.Errorf("parse amount %q: %w", clip(s), ErrSyntax)
	}
	if len(frac) > c.Exponent {
		return 0, fmt.Errorf("parse amount %q: %s has %d decimal places: %w", clip(s), c.Code, c.Exponent, ErrTooPrecise)
	}

	// Accumulate the magnitude in uint64 so that -9223372036854775808, which
	// Format writes for math.MinInt64, reads back.
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	var v uint64
	push := func(d uint64) bool {
		if v > (limit-d)/10 {
			return false
		}
		v = v*10 + d
		return true
	}
	for i := 0; i < len(whole); i++ {
		if !push(uint64(whole[i] - '0')) {
			return 0, fmt.Errorf("parse amount %q: %w", clip(s), ErrOverflow)
		}
	}
	for i := 0; i < c.Exponent; i++ {
		var d uint64
		if i < len(frac) {
			d = uint64(frac[i] - '0')
		}
		if !push(d) {
			return 0, fmt.Errorf("parse amount %q: %w", clip(s), ErrOverflow)
		}
	}
	if neg {
		return int64(-v), nil // -v wraps to the two's complement, also for 1<<63
	}
	return int64(v), nil
}

// digits reports whether s is one or more ASCII digits.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// clip shortens hostile input before it is quoted in an error message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// Format writes minor units of currency in major units followed by the code,
// such as "25.00 EUR", "-0.05 EUR", "1000 JPY" or "1.500 KWD". For a code
// Lookup does not know it writes the minor units as they are, such as
// "2500 minor units of XYZ", rather than guess a decimal point.
func Format(minor int64, currency string) string {
	c, ok := lookup(currency)
	if !ok {
		return strconv.FormatInt(minor, 10) + " minor units of " + currency
	}
	return c.FormatMinor(minor) + " " + c.Code
}

// FormatMinor writes minor units of c in major units without the code, such
// as "25.00" for 2500 EUR, with exactly c.Exponent decimal places.
func (c Currency) FormatMinor(minor int64) string {
	mag := uint64(minor)
	if minor < 0 {
		mag = -mag // two's complement magnitude, also for math.MinInt64
	}
	ds := strconv.FormatUint(mag, 10)
	if c.Exponent > 0 {
		if len(ds) <= c.Exponent {
			ds = strings.Repeat("0", c.Exponent-len(ds)+1) + ds
		}
		ds = ds[:len(ds)-c.Exponent] + "." + ds[len(ds)-c.Exponent:]
	}
	if minor < 0 {
		return "-" + ds
	}
	return ds
}
