package money_test

import (
	"errors"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"

	"mtlsbank/internal/money"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name     string
		code     string
		exponent int
		found    bool
	}{
		{name: "euro", code: "EUR", exponent: 2, found: true},
		{name: "us dollar", code: "USD", exponent: 2, found: true},
		{name: "swiss franc", code: "CHF", exponent: 2, found: true},
		{name: "pound sterling", code: "GBP", exponent: 2, found: true},
		{name: "yen has no minor unit", code: "JPY", exponent: 0, found: true},
		{name: "won has no minor unit", code: "KRW", exponent: 0, found: true},
		{name: "iceland krona has no minor unit", code: "ISK", exponent: 0, found: true},
		{name: "kuwaiti dinar has three", code: "KWD", exponent: 3, found: true},
		{name: "bahraini dinar has three", code: "BHD", exponent: 3, found: true},
		{name: "tunisian dinar has three", code: "TND", exponent: 3, found: true},
		{name: "unidad de fomento has four", code: "CLF", exponent: 4, found: true},
		{name: "lower case is not a code", code: "eur"},
		{name: "withdrawn kuna", code: "HRK"},
		{name: "gold has no minor unit", code: "XAU"},
		{name: "test code", code: "XTS"},
		{name: "empty", code: ""},
		{name: "too long", code: "EURO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := money.Lookup(tt.code)
			if ok != tt.found {
				t.Fatalf("Lookup(%q) found = %v, want %v", tt.code, ok, tt.found)
			}
			if !ok {
				return
			}
			if c.Code != tt.code || c.Exponent != tt.exponent || c.Name == "" {
				t.Errorf("Lookup(%q) = %+v, want code %s exponent %d and a name", tt.code, c, tt.code, tt.exponent)
			}
		})
	}
}

// TestCodesMatchLookup checks the two halves of the table against each other
// over every possible three-letter code.
func TestCodesMatchLookup(t *testing.T) {
	codes := money.Codes()
	if len(codes) < 150 {
		t.Fatalf("Codes() has %d codes, want the complete active list (> 150)", len(codes))
	}
	if !slices.IsSorted(codes) || len(slices.Compact(slices.Clone(codes))) != len(codes) {
		t.Fatalf("Codes() is not sorted and unique: %v", codes)
	}
	var b [3]byte
	for b[0] = 'A'; b[0] <= 'Z'; b[0]++ {
		for b[1] = 'A'; b[1] <= 'Z'; b[1]++ {
			for b[2] = 'A'; b[2] <= 'Z'; b[2]++ {
				code := string(b[:])
				_, ok := money.Lookup(code)
				_, listed := slices.BinarySearch(codes, code)
				if ok != listed {
					t.Errorf("%s: Lookup found = %v but listed in Codes = %v", code, ok, listed)
				}
			}
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		major    string
		currency string
		want     int64
		err      error
	}{
		{name: "whole euros", major: "25", currency: "EUR", want: 2500},
		{name: "one decimal", major: "25.5", currency: "EUR", want: 2550},
		{name: "two decimals", major: "25.00", currency: "EUR", want: 2500},
		{name: "one cent", major: "0.01", currency: "EUR", want: 1},
		{name: "zero", major: "0", currency: "EUR", want: 0},
		{name: "leading zeros", major: "007.10", currency: "EUR", want: 710},
		{name: "yen", major: "1000", currency: "JPY", want: 1000},
		{name: "dinar fils", major: "1.5", currency: "KWD", want: 1500},
		{name: "dinar three decimals", major: "0.001", currency: "KWD", want: 1},
		{name: "largest", major: "92233720368547758.07", currency: "EUR", want: math.MaxInt64},
		{name: "largest yen", major: "9223372036854775807", currency: "JPY", want: math.MaxInt64},
		{name: "one past largest", major: "92233720368547758.08", currency: "EUR", err: money.ErrOverflow},
		{name: "far too large", major: "100000000000000000000", currency: "EUR", err: money.ErrOverflow},
		{name: "too many decimals", major: "25.001", currency: "EUR", err: money.ErrTooPrecise},
		{name: "trailing zero beyond the minor unit", major: "25.000", currency: "EUR", err: money.ErrTooPrecise},
		{name: "decimals on yen", major: "25.0", currency: "JPY", err: money.ErrTooPrecise},
		{name: "four decimals on dinar", major: "1.0001", currency: "KWD", err: money.ErrTooPrecise},
		{name: "minus", major: "-25", currency: "EUR", err: money.ErrSign},
		{name: "plus", major: "+25", currency: "EUR", err: money.ErrSign},
		{name: "empty", major: "", currency: "EUR", err: money.ErrSyntax},
		{name: "point only", major: ".", currency: "EUR", err: money.ErrSyntax},
		{name: "no whole part", major: ".5", currency: "EUR", err: money.ErrSyntax},
		{name: "no fraction", major: "5.", currency: "EUR", err: money.ErrSyntax},
		{name: "two points", major: "1.2.3", currency: "EUR", err: money.ErrSyntax},
		{name: "comma", major: "25,00", currency: "EUR", err: money.ErrSyntax},
		{name: "thousands separator", major: "1,000", currency: "EUR", err: money.ErrSyntax},
		{name: "underscore", major: "1_000", currency: "EUR", err: money.ErrSyntax},
		{name: "exponent", major: "1e3", currency: "EUR", err: money.ErrSyntax},
		{name: "space", major: " 25", currency: "EUR", err: money.ErrSyntax},
		{name: "hex", major: "0x10", currency: "EUR", err: money.ErrSyntax},
		{name: "infinity", major: "Inf", currency: "EUR", err: money.ErrSyntax},
		{name: "arabic-indic digit", major: "٥", currency: "EUR", err: money.ErrSyntax},
		{name: "minus alone", major: "-", currency: "EUR", err: money.ErrSign},
		{name: "unknown currency", major: "25", currency: "XYZ", err: money.ErrUnknownCurrency},
		{name: "lower-case currency", major: "25", currency: "eur", err: money.ErrUnknownCurrency},
		{name: "empty currency", major: "25", currency: "", err: money.ErrUnknownCurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := money.Parse(tt.major, tt.currency)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse(%q, %q) error = %v, want %v", tt.major, tt.currency, err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Errorf("Parse(%q, %q) = %d, want %d", tt.major, tt.currency, got, tt.want)
			}
		})
	}
}

func TestParseSigned(t *testing.T) {
	tests := []struct {
		name     string
		major    string
		currency string
		want     int64
		err      error
	}{
		{name: "negative", major: "-25.5", currency: "EUR", want: -2550},
		{name: "negative zero", major: "-0.00", currency: "EUR", want: 0},
		{name: "positive", major: "25.5", currency: "EUR", want: 2550},
		{name: "smallest", major: "-92233720368547758.08", currency: "EUR", want: math.MinInt64},
		{name: "below smallest", major: "-92233720368547758.09", currency: "EUR", err: money.ErrOverflow},
		{name: "largest positive", major: "92233720368547758.08", currency: "EUR", err: money.ErrOverflow},
		{name: "plus is still refused", major: "+1", currency: "EUR", err: money.ErrSign},
		{name: "double minus", major: "--1", currency: "EUR", err: money.ErrSyntax},
		{name: "minus alone", major: "-", currency: "EUR", err: money.ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := money.ParseSigned(tt.major, tt.currency)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseSigned(%q, %q) error = %v, want %v", tt.major, tt.currency, err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Errorf("ParseSigned(%q, %q) = %d, want %d", tt.major, tt.currency, got, tt.want)
			}
		})
	}
}

func TestParseErrorClipsInput(t *testing.T) {
	long := strings.Repeat("9", 10000)
	_, err := money.Parse(long, "EUR")
	if !errors.Is(err, money.ErrOverflow) {
		t.Fatalf("Parse(10000 nines) error = %v, want ErrOverflow", err)
	}
	if len(err.Error()) > 200 {
		t.Errorf("error message is %d bytes long; hostile input must be clipped", len(err.Error()))
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name     string
		minor    int64
		currency string
		want     string
	}{
		{name: "euros", minor: 2500, currency: "EUR", want: "25.00 EUR"},
		{name: "cents", minor: 2550, currency: "EUR", want: "25.50 EUR"},
		{name: "one cent", minor: 1, currency: "EUR", want: "0.01 EUR"},
		{name: "zero", minor: 0, currency: "EUR", want: "0.00 EUR"},
		{name: "negative", minor: -2500, currency: "EUR", want: "-25.00 EUR"},
		{name: "negative cent", minor: -5, currency: "EUR", want: "-0.05 EUR"},
		{name: "yen", minor: 1000, currency: "JPY", want: "1000 JPY"},
		{name: "negative yen", minor: -7, currency: "JPY", want: "-7 JPY"},
		{name: "dinar", minor: 1500, currency: "KWD", want: "1.500 KWD"},
		{name: "fils", minor: 1, currency: "KWD", want: "0.001 KWD"},
		{name: "largest", minor: math.MaxInt64, currency: "EUR", want: "92233720368547758.07 EUR"},
		{name: "smallest", minor: math.MinInt64, currency: "EUR", want: "-92233720368547758.08 EUR"},
		{name: "unknown currency", minor: 2500, currency: "XYZ", want: "2500 minor units of XYZ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := money.Format(tt.minor, tt.currency); got != tt.want {
				t.Errorf("Format(%d, %q) = %q, want %q", tt.minor, tt.currency, got, tt.want)
			}
			if got := (money.Amount{Currency: tt.currency, Minor: tt.minor}).String(); got != tt.want {
				t.Errorf("Amount.String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseAmount(t *testing.T) {
	got, err := money.ParseAmount("12.34", "USD")
	if err != nil {
		t.Fatalf("ParseAmount: %v", err)
	}
	if want := (money.Amount{Currency: "USD", Minor: 1234}); got != want {
		t.Errorf("ParseAmount = %+v, want %+v", got, want)
	}
	if _, err := money.ParseAmount("12.345", "USD"); !errors.Is(err, money.ErrTooPrecise) {
		t.Errorf("ParseAmount(12.345 USD) error = %v, want ErrTooPrecise", err)
	}
}

// FuzzFormatParse checks that ParseSigned reads back exactly what Format writes.
func FuzzFormatParse(f *testing.F) {
	f.Add(int64(0), uint8(0))
	f.Add(int64(2550), uint8(1))
	f.Add(int64(-1), uint8(2))
	f.Add(int64(math.MaxInt64), uint8(3))
	f.Add(int64(math.MinInt64), uint8(4))
	codes := money.Codes()
	f.Fuzz(func(t *testing.T, minor int64, pick uint8) {
		code := codes[int(pick)%len(codes)]
		text := money.Format(minor, code)
		major, gotCode, ok := strings.Cut(text, " ")
		if !ok || gotCode != code {
			t.Fatalf("Format(%d, %s) = %q: want major units, a space and the code", minor, code, text)
		}
		back, err := money.ParseSigned(major, code)
		if err != nil {
			t.Fatalf("ParseSigned(%q, %s) after Format(%d): %v", major, code, minor, err)
		}
		if back != minor {
			t.Fatalf("ParseSigned(Format(%d, %s)) = %d", minor, code, back)
		}
		if minor >= 0 {
			if back, err := money.Parse(major, code); err != nil || back != minor {
				t.Fatalf("Parse(%q, %s) = %d, %v; want %d", major, code, back, err, minor)
			}
		}
	})
}

// FuzzParse checks Parse against an independent decimal reader (math/big):
// whatever Parse accepts has the exact value, and it refuses only what the
// rules refuse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"25", "25.5", "0.01", "-1", "1e3", "92233720368547758.08", "00.10", ".5", "1.", "+1"} {
		f.Add(s, uint8(0))
	}
	codes := money.Codes()
	f.Fuzz(func(t *testing.T, s string, pick uint8) {
		code := codes[int(pick)%len(codes)]
		c, _ := money.Lookup(code)
		got, err := money.Parse(s, code)

		wellFormed := plainDecimal(s)
		if !wellFormed {
			if err == nil {
				t.Fatalf("Parse(%q, %s) = %d, want an error for malformed text", s, code, got)
			}
			return
		}
		_, frac, _ := strings.Cut(s, ".")
		want, _ := new(big.Rat).SetString(s)
		want.Mul(want, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(c.Exponent)), nil)))
		switch {
		case len(frac) > c.Exponent:
			if !errors.Is(err, money.ErrTooPrecise) {
				t.Fatalf("Parse(%q, %s) error = %v, want ErrTooPrecise", s, code, err)
			}
		case want.Num().Cmp(big.NewInt(math.MaxInt64)) > 0:
			if !errors.Is(err, money.ErrOverflow) {
				t.Fatalf("Parse(%q, %s) error = %v, want ErrOverflow", s, code, err)
			}
		default:
			if err != nil {
				t.Fatalf("Parse(%q, %s): %v", s, code, err)
			}
			if !want.IsInt() || want.Num().Int64() != got {
				t.Fatalf("Parse(%q, %s) = %d, want %s", s, code, got, want.RatString())
			}
		}
	})
}

// plainDecimal is the grammar Parse documents, written independently:
// digits, optionally a point followed by digits.
func plainDecimal(s string) bool {
	whole, frac, hasPoint := strings.Cut(s, ".")
	isDigits := func(x string) bool {
		return x != "" && strings.Trim(x, "0123456789") == ""
	}
	return isDigits(whole) && (!hasPoint || isDigits(frac))
}
