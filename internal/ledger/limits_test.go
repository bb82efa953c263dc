package ledger_test

import (
	"strings"
	"testing"

	"mtlsbank/internal/ledger"
)

// limits returns CurrencyLimits parsed from text on top of base, or fails the test.
func limits(tb testing.TB, base ledger.CurrencyLimits, text string) ledger.CurrencyLimits {
	tb.Helper()
	if err := base.Set(text); err != nil {
		tb.Fatalf("limits %q: %v", text, err)
	}
	return base
}

func TestNewRefusesInconsistentLimits(t *testing.T) {
	s := openStore(t, t.TempDir()+"/ledger.db")
	tests := []struct {
		name string
		opts []ledger.Option
		want string
	}{
		{name: "max amount above max supply", want: "max amount of EUR (2000.00 EUR) is more than its max supply (1000.00 EUR)", opts: []ledger.Option{
			ledger.WithMaxAmount(limits(t, ledger.DefaultMaxAmounts(), "EUR:2000.00")),
			ledger.WithMaxSupply(limits(t, ledger.DefaultMaxSupplies(), "EUR:1000.00")),
		}},
		{name: "zero value limits", want: "max amount of EUR is not between 1 and", opts: []ledger.Option{ledger.WithMaxAmount(ledger.CurrencyLimits{})}},
		{name: "default above the ceiling", want: "max supply of CLF is not between 1 and", opts: []ledger.Option{
			ledger.WithMaxSupply(ledger.NewCurrencyLimits(ledger.DefaultMaxSupply * 10)),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ledger.New(s, tt.opts...)
			if err == nil {
				_ = l.Close()
				t.Fatal("New accepted the limits")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestCurrencyLimitsSet(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    map[string]int64 // expected Max per currency
		str     string
		wantErr string
	}{
		{name: "defaults only", text: "", want: map[string]int64{"EUR": 100_000_000_000, "JPY": 1_000_000_000, "KWD": 1_000_000_000_000, "CLF": 10_000_000_000_000},
			str: "*:1000000000"},
		{name: "per currency", text: " EUR:1000000.00, JPY:150000000 ", want: map[string]int64{"EUR": 100_000_000, "JPY": 150_000_000, "USD": 100_000_000_000},
			str: "*:1000000000,EUR:1000000.00,JPY:150000000"},
		{name: "new default", text: "*:5000,USD:10.50", want: map[string]int64{"EUR": 500_000, "USD": 1050, "BHD": 5_000_000},
			str: "*:5000,USD:10.50"},
		{name: "ceiling", text: "EUR:10000000000000000.00,*:100000000000000", want: map[string]int64{"EUR": ledger.MaxLimit, "CLF": ledger.MaxLimit}},
		{name: "no colon", text: "EUR", wantErr: "not a comma-separated list"},
		{name: "unknown currency", text: "XYZ:10", wantErr: "unknown currency"},
		{name: "lower-case code", text: "eur:10", wantErr: "unknown currency"},
		{name: "too precise", text: "JPY:10.5", wantErr: "decimal places"},
		{name: "zero", text: "EUR:0.00", wantErr: "must be positive"},
		{name: "negative", text: "EUR:-1", wantErr: "sign"},
		{name: "duplicate", text: "EUR:1,EUR:2", wantErr: "given twice"},
		{name: "above the ceiling", text: "EUR:10000000000000000.01", wantErr: "more than 1000000000000000000 minor units"},
		{name: "int64 maximum", text: "JPY:9223372036854775807", wantErr: "more than 1000000000000000000 minor units"},
		{name: "default with decimals", text: "*:10.00", wantErr: "whole number"},
		{name: "default zero", text: "*:0", wantErr: "whole number"},
		{name: "default with a sign", text: "*:+5", wantErr: "whole number"},
		{name: "default too large for CLF", text: "*:100000000000001", wantErr: "CLF"},
		{name: "default twice", text: "*:1,*:2", wantErr: "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ledger.DefaultMaxAmounts()
			err := l.Set(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Set(%q) = %v, want an error with %q", tt.text, err, tt.wantErr)
				}
				if got, _ := l.Max("EUR"); got != 100_000_000_000 {
					t.Errorf("a refused Set changed the limits: EUR %d", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set(%q): %v", tt.text, err)
			}
			for code, want := range tt.want {
				if got, ok := l.Max(code); !ok || got != want {
					t.Errorf("Max(%s) = %d, %v; want %d", code, got, ok, want)
				}
			}
			if tt.str != "" && l.String() != tt.str {
				t.Errorf("String() = %q, want %q", l.String(), tt.str)
			}
			back := ledger.NewCurrencyLimits(1)
			if err := back.Set(l.String()); err != nil || back.String() != l.String() {
				t.Errorf("String() %q does not read back: %q, %v", l.String(), back.String(), err)
			}
		})
	}
	if _, ok := ledger.DefaultMaxAmounts().Max("XYZ"); ok {
		t.Error("Max of an unknown currency reported ok")
	}
}
