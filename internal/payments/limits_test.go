package payments_test

import (
	"errors"
	"testing"

	"mtlsbank/internal/money"
	"mtlsbank/internal/payments"
)

func TestParseLimits(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		want     map[string]int64 // currency -> max; absent currencies must be refused
		wantErr  error
		wantText string
	}{
		{name: "default", text: payments.DefaultCustomerLimits, want: map[string]int64{"EUR": 100000, "USD": 100000}, wantText: "EUR:1000.00,USD:1000.00"},
		{name: "spaces and zero exponent", text: " JPY:5000 , KWD:1.500", want: map[string]int64{"JPY": 5000, "KWD": 1500}, wantText: "JPY:5000,KWD:1.500"},
		{name: "empty allows nothing", text: "", want: map[string]int64{}, wantText: ""},
		{name: "no colon", text: "EUR1000", wantErr: payments.ErrLimitSyntax},
		{name: "unknown currency", text: "XXX:10", wantErr: money.ErrUnknownCurrency},
		{name: "too precise", text: "EUR:10.001", wantErr: money.ErrTooPrecise},
		{name: "negative", text: "EUR:-1", wantErr: money.ErrSign},
		{name: "lower case code", text: "eur:10", wantErr: money.ErrUnknownCurrency},
		{name: "twice", text: "EUR:1,EUR:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := payments.ParseLimits(tt.text)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ParseLimits(%q): no error", tt.text)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseLimits(%q) = %v, want %v", tt.text, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLimits(%q): %v", tt.text, err)
			}
			for code, max := range tt.want {
				if got, ok := l.Max(code); !ok || got != max {
					t.Errorf("Max(%s) = %d, %v; want %d", code, got, ok, max)
				}
			}
			if _, ok := l.Max("GBP"); ok {
				t.Error("Max(GBP) allowed a currency without a limit")
			}
			if got := l.String(); got != tt.wantText {
				t.Errorf("String() = %q, want %q", got, tt.wantText)
			}
		})
	}
}

func TestOrderFingerprint(t *testing.T) {
	base := payments.Order{FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: 2500, Memo: "rent"}
	tests := []struct {
		name  string
		order payments.Order
	}{
		{"other from", payments.Order{FromAccountID: "acc_x", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: 2500, Memo: "rent"}},
		{"other to", payments.Order{FromAccountID: "acc_a", ToAccountID: "acc_x", Currency: "EUR", MinorUnits: 2500, Memo: "rent"}},
		{"other currency", payments.Order{FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "USD", MinorUnits: 2500, Memo: "rent"}},
		{"other amount", payments.Order{FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: 2501, Memo: "rent"}},
		{"other memo", payments.Order{FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: 2500, Memo: "rent!"}},
		{"shifted boundary", payments.Order{FromAccountID: "acc_ab", ToAccountID: "", Currency: "EUR", MinorUnits: 2500, Memo: "rent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.order.Fingerprint() == base.Fingerprint() {
				t.Fatalf("%+v has the fingerprint of %+v", tt.order, base)
			}
		})
	}
	if base.Fingerprint() != (payments.Order{FromAccountID: "acc_a", ToAccountID: "acc_b", Currency: "EUR", MinorUnits: 2500, Memo: "rent"}).Fingerprint() {
		t.Fatal("equal orders have different fingerprints")
	}
}

func TestLimitsSet(t *testing.T) {
	var l payments.Limits
	if err := l.Set("EUR:5.00"); err != nil {
		t.Fatal(err)
	}
	if err := l.Set("EUR:nope"); err == nil {
		t.Fatal("Set(EUR:nope): no error")
	}
	if got := l.String(); got != "EUR:5.00" {
		t.Fatalf("after a failed Set: %q, want the last good value EUR:5.00", got)
	}
}
