package ledger

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncodeID(t *testing.T) {
	tests := []struct {
		name string
		in   [16]byte
		want string
	}{
		{name: "zero", want: strings.Repeat("0", 26)},
		{name: "one", in: [16]byte{15: 1}, want: strings.Repeat("0", 25) + "1"},
		{name: "thirty-one", in: [16]byte{15: 31}, want: strings.Repeat("0", 25) + "z"},
		{name: "thirty-two", in: [16]byte{15: 32}, want: strings.Repeat("0", 24) + "10"},
		{name: "top bit", in: [16]byte{0: 0x80}, want: "4" + strings.Repeat("0", 25)},
		{name: "all ones", in: [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, want: "7" + strings.Repeat("z", 25)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := encodeID(tt.in)
			if got != tt.want {
				t.Errorf("encodeID = %s, want %s", got, tt.want)
			}
			if _, err := ParseAccountID(accountPrefix + got); err != nil {
				t.Errorf("ParseAccountID(%s): %v", got, err)
			}
		})
	}
}

func TestNewIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		a, tx := newAccountID(), newTransactionID()
		if _, err := ParseAccountID(string(a)); err != nil {
			t.Fatalf("new account id %s: %v", a, err)
		}
		if _, err := ParseTransactionID(string(tx)); err != nil {
			t.Fatalf("new transaction id %s: %v", tx, err)
		}
		if seen[string(a)] || seen[string(tx)] {
			t.Fatalf("id repeated: %s or %s", a, tx)
		}
		seen[string(a)], seen[string(tx)] = true, true
	}
}

// TestTransactionIDsSortByTime: an id made in a later millisecond sorts after every
// id of an earlier one (the ledger's inserts append to its indexes), and ids of the
// same millisecond still differ in their 80 random bits.
func TestTransactionIDsSortByTime(t *testing.T) {
	first := newTransactionID()
	for start := time.Now(); time.Since(start) < 2*time.Millisecond; {
		// Wait for the clock, not for another goroutine: the next id is of a later millisecond.
	}
	if later := newTransactionID(); later <= first {
		t.Fatalf("id %s made 2 ms after %s sorts before it", later, first)
	}
	a, b := newTransactionID(), newTransactionID()
	// The last 12 characters are 60 of the random bits.
	if a[len(a)-12:] == b[len(b)-12:] {
		t.Fatalf("two ids share their random low bits: %s %s", a, b)
	}
}

func TestParseIDRefuses(t *testing.T) {
	body := strings.Repeat("0", 26)
	tests := []struct {
		name string
		in   string
	}{
		{name: "empty", in: ""},
		{name: "prefix only", in: "acc_"},
		{name: "wrong prefix", in: "txn_" + body},
		{name: "upper-case prefix", in: "ACC_" + body},
		{name: "short", in: "acc_" + body[1:]},
		{name: "long", in: "acc_" + body + "0"},
		{name: "letter i", in: "acc_" + body[1:] + "i"},
		{name: "letter l", in: "acc_" + body[1:] + "l"},
		{name: "letter o", in: "acc_" + body[1:] + "o"},
		{name: "letter u", in: "acc_" + body[1:] + "u"},
		{name: "upper case", in: "acc_" + body[1:] + "A"},
		{name: "over 128 bits", in: "acc_8" + body[1:]},
		{name: "non-ASCII", in: "acc_" + body[2:] + "é"},
		{name: "space", in: " acc_" + body},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseAccountID(tt.in); !errors.Is(err, ErrMalformedID) || !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("ParseAccountID(%q) = %v, want ErrMalformedID", tt.in, err)
			}
		})
	}
}

func TestRefusalCodesRoundTrip(t *testing.T) {
	for _, sentinel := range []error{ErrInsufficientFunds, ErrAccountNotFound, ErrCurrencyMismatch, ErrBalanceOverflow, ErrSupplyLimit} {
		orig := &Error{Field: "f", Err: sentinel, Detail: "d"}
		_, code, ok := refusalCode(orig)
		if !ok {
			t.Fatalf("%v is not recordable", sentinel)
		}
		back, ok := refusalFromCode(code, "f", "d")
		if !ok || back.Error() != orig.Error() || !errors.Is(back, sentinel) {
			t.Errorf("code %q rebuilds %v, want %v", code, back, orig)
		}
	}
	for _, notRecorded := range []error{ErrMalformedID, ErrIdempotencyMismatch, ErrNotOwner, ErrInvalidAmount, ErrAmountTooLarge, errors.New("disk")} {
		if _, _, ok := refusalCode(&Error{Err: notRecorded}); ok {
			t.Errorf("%v would be recorded under the key", notRecorded)
		}
	}
	if _, ok := refusalFromCode("no_such_code", "", ""); ok {
		t.Error("unknown code rebuilt")
	}
}
