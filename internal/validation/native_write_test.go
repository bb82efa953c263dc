package validation

import (
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
)

const (
	accountA = "acc_01j9z3k5m7p9r1t3v5x7z9b1d3"
	accountB = "acc_7zzzzzzzzzzzzzzzzzzzzzzzzz"
)

// write is the content of a request that moves money; text is its reference or memo.
type write struct {
	from, to, key, text string
	amount              *typev1.Money
}

// writeRequests are the requests that carry a write, each with the name of its text field.
var writeRequests = []struct {
	name string
	msg  func(w write) proto.Message
}{
	{"Transfer", func(w write) proto.Message {
		return &accountsv1.TransferRequest{FromAccountId: w.from, ToAccountId: w.to, Amount: w.amount, IdempotencyKey: w.key, Reference: w.text}
	}},
	{"CreatePayment", func(w write) proto.Message {
		return &paymentsv1.CreatePaymentRequest{FromAccountId: w.from, ToAccountId: w.to, Amount: w.amount, IdempotencyKey: w.key, Memo: w.text}
	}},
	{"Deposit", func(w write) proto.Message {
		return &accountsv1.DepositRequest{AccountId: w.from, Amount: w.amount, IdempotencyKey: w.key, Reference: w.text}
	}},
	{"Withdraw", func(w write) proto.Message {
		return &accountsv1.WithdrawRequest{AccountId: w.from, Amount: w.amount, IdempotencyKey: w.key, Reference: w.text}
	}},
}

// The values each field of a write is drawn from: valid ones and every way to be wrong
// the rules tell apart.
var (
	writeIDs = []string{
		accountA, accountB, "", "acc_x", strings.ToUpper(accountA), accountA[:5] + "J" + accountA[6:],
		accountA[:len(accountA)-1] + "D", accountA + "\x00", "pay_ABCDEFGHIJKLMNOPQRSTUVWXYZ",
	}
	writeKeys = []string{
		"k", "rent-2026-12", "", " ", "a b", "a\tb", "\x00", "a\x7f", "!", "~", "é", "key\u00a0", "\xff",
		strings.Repeat("!", 127), strings.Repeat("~", 128), strings.Repeat("k", 129), strings.Repeat("k", 127) + "é",
	}
	writeCurrencies = []string{"EUR", "USD", "eur", "Eur", "EU", "EURO", "E1R", "", "ÉUR", "\u0415UR", "EU\x00", " EU", "EUR\n", "ＥUR", "\xffUR"}
	writeMinor      = []int64{1, 2500, 0, -1, 1_000_000_000_000_000_000, 1_000_000_000_000_000_001, math.MinInt64, math.MaxInt64}
	writeTexts      = texts()
)

// texts are the references and memos tried: lengths around each limit in bytes and in
// characters, every control and bidirectional control, characters that look like them
// but are allowed, and invalid UTF-8.
func texts() []string {
	out := []string{"", "December rent", "Loyer de décembre", "Miete für Dezember 🏠", "家賃", "\u200e", "\u200f", "\u2028", "\ufeff", "\ufffd", "\u00a0"}
	for _, n := range []int{1, 127, 128, 129, 199, 200, 201, 255, 256, 257} {
		out = append(out, strings.Repeat("a", n))
	}
	for _, n := range []int{99, 100, 101, 127, 128, 129, 199, 200, 201} {
		out = append(out, strings.Repeat("é", n), strings.Repeat("€", n), strings.Repeat("😀", n), strings.Repeat("a", 256-n)+strings.Repeat("é", n))
	}
	for _, r := range []rune{0, 0x9, 0xa, 0xd, 0x1f, 0x7f, 0x80, 0x85, 0x9f, 0xa0, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x2029, 0x206a, 0x2065} {
		out = append(out, string(r), "rent "+string(r)+" december", strings.Repeat("a", 255)+string(r))
	}
	for r := rune(0); r < 0x100; r++ {
		out = append(out, "x"+string(r))
	}
	for _, b := range []string{"\xff", "\xc3", "\xc3(", "\xe2\x80", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\x80"} {
		out = append(out, b, "rent "+b, strings.Repeat("a", 255)+b, strings.Repeat("é", 199)+b)
	}
	return out
}

// randomText is mostly ordinary text of 0 to 260 characters, 1 to 4 bytes each, with now
// and then a control, a bidirectional control or a byte that is not UTF-8.
func randomText(rng *rand.Rand) string {
	const ordinary = "ab ,.-'é€😀家"
	odd := []string{"\x00", "\t", "\x7f", "\u0085", "\u202e", "\u2066", "\u200e", "\xff", "\xc3"}
	chars := []rune(ordinary)
	var b strings.Builder
	for range rng.IntN(261) {
		if rng.IntN(400) == 0 {
			b.WriteString(odd[rng.IntN(len(odd))])
		} else {
			b.WriteRune(chars[rng.IntN(len(chars))])
		}
	}
	return b.String()
}

// validWrite is an ordinary write.
var validWrite = write{from: accountA, to: accountB, key: "k", text: "December rent", amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 2500}}

// writeCorpus is every value of every field, the others valid, then random writes over
// all values, always the same.
func writeCorpus() []write {
	valid := validWrite
	var writes []write
	amounts := []*typev1.Money{nil, {}}
	for _, c := range writeCurrencies {
		for _, n := range writeMinor {
			amounts = append(amounts, &typev1.Money{CurrencyCode: c, MinorUnits: n})
		}
	}
	for _, id := range writeIDs {
		w := valid
		w.from = id
		writes = append(writes, w)
		w = valid
		w.to = id
		writes = append(writes, w)
		w.from = id
		writes = append(writes, w) // from == to
	}
	for _, k := range writeKeys {
		w := valid
		w.key = k
		writes = append(writes, w)
	}
	for _, s := range writeTexts {
		w := valid
		w.text = s
		writes = append(writes, w)
	}
	for _, a := range amounts {
		w := valid
		w.amount = a
		writes = append(writes, w)
	}
	rng := rand.New(rand.NewPCG(3, 5))
	pick := func(vals []string) string { return vals[rng.IntN(len(vals))] }
	// Each field of a random write is valid one time in two, so that many are.
	or := func(valid, other string) string { return []string{valid, other}[rng.IntN(2)] }
	for range 5000 {
		w := write{from: or(accountA, pick(writeIDs)), to: or(accountB, pick(writeIDs)), key: or("k", pick(writeKeys)), text: or(pick(writeTexts), randomText(rng)), amount: valid.amount}
		if rng.IntN(2) == 0 {
			w.amount = amounts[rng.IntN(len(amounts))]
		}
		writes = append(writes, w)
	}
	return writes
}

// TestNativeWritesPlanned: the requests that move money are planned, every rule of theirs
// checked natively (their fields' and self_transfer), so the gain cannot vanish unnoticed.
func TestNativeWritesPlanned(t *testing.T) {
	plan := natives()
	for _, m := range []proto.Message{&accountsv1.TransferRequest{}, &paymentsv1.CreatePaymentRequest{}} {
		c := plan[m.ProtoReflect().Descriptor().FullName()]
		if c == nil || len(c.fields) != 5 || len(c.rules) != 1 {
			t.Errorf("%s is not checked natively, with its 5 fields and self_transfer: %+v", m.ProtoReflect().Descriptor().FullName(), c)
		}
	}
}

// TestNativeWritesAcceptOrdinary: the requests the services receive are accepted natively.
func TestNativeWritesAcceptOrdinary(t *testing.T) {
	plan := natives()
	for _, req := range writeRequests {
		for _, text := range []string{"", "December rent", "Loyer de décembre", "Miete für Dezember 🏠", "家賃 12月"} {
			m := req.msg(write{from: accountA, to: accountB, key: "rent-2026-12", text: text, amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 2500}})
			if !plan[m.ProtoReflect().Descriptor().FullName()].accepts(m.ProtoReflect()) {
				t.Errorf("%s with text %q: not accepted natively", req.name, text)
			}
		}
	}
}

// TestNativeWritesMatchProtovalidate decides writes both ways: whenever native accepts,
// protovalidate must; and native refuses a write protovalidate accepts only for text
// that is not valid UTF-8 (which gRPC refuses before validation anyway).
func TestNativeWritesMatchProtovalidate(t *testing.T) {
	pv, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	plan := natives()
	writes := writeCorpus()
	for _, req := range writeRequests {
		name := req.msg(write{}).ProtoReflect().Descriptor().FullName()
		check := plan[name]
		if check == nil {
			t.Fatalf("%s not planned", name)
		}
		nativeN, pvN := 0, 0
		for _, w := range writes {
			m := req.msg(w)
			native := check.accepts(m.ProtoReflect())
			lib := pv.Validate(m)
			switch {
			case native && lib != nil:
				t.Fatalf("BYPASS %s %+v (amount %v): native accepts, protovalidate says %v", name, w, w.amount, lib)
			case !native && lib == nil && utf8.ValidString(w.text):
				t.Errorf("%s %+v (amount %v): protovalidate accepts, native does not", name, w, w.amount)
			}
			if native {
				nativeN++
			}
			if lib == nil {
				pvN++
			}
		}
		t.Logf("%s: %d writes, %d accepted natively, %d by protovalidate", name, len(writes), nativeN, pvN)
	}
}

// TestNativeTextEveryCharacter: isText refuses exactly the characters of the text rules'
// class, for every code point, and protovalidate agrees on a memo of each below U+3000
// and in the bidirectional blocks.
func TestNativeTextEveryCharacter(t *testing.T) {
	class := regexp.MustCompile(textClass)
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		s := string(r)
		if isText(s) == class.MatchString(s) {
			t.Fatalf("U+%04X: native %v, the class matches: %v", r, isText(s), class.MatchString(s))
		}
	}
	pv, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	for r := rune(0); r < 0x3000; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		m := &paymentsv1.CreatePaymentRequest{FromAccountId: accountA, ToAccountId: accountB, Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1}, IdempotencyKey: "k", Memo: "a" + string(r)}
		if native, lib := natives()[m.ProtoReflect().Descriptor().FullName()].accepts(m.ProtoReflect()), pv.Validate(m) == nil; native != lib {
			t.Fatalf("memo a+U+%04X: native %v, protovalidate %v", r, native, lib)
		}
	}
}

// TestNativeInvalidUTF8: protovalidate accepts text that is not valid UTF-8 (CEL reads
// each bad byte as U+FFFD); native leaves it to protovalidate rather than accept it.
func TestNativeInvalidUTF8(t *testing.T) {
	pv, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"\xff", "rent \xc3", "\xed\xa0\x80"} {
		m := &paymentsv1.CreatePaymentRequest{FromAccountId: accountA, ToAccountId: accountB, Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1}, IdempotencyKey: "k", Memo: s}
		if natives()[m.ProtoReflect().Descriptor().FullName()].accepts(m.ProtoReflect()) {
			t.Errorf("memo %q accepted natively", s)
		}
		t.Logf("memo %q: protovalidate says %v", s, pv.Validate(m))
	}
}

// FuzzNativeWrites decodes write requests from bytes, as the gRPC codec does: whenever
// native accepts one, protovalidate must.
func FuzzNativeWrites(f *testing.F) {
	for _, req := range writeRequests {
		for _, w := range []write{validWrite, {from: accountA, to: accountA, key: "k k", text: "\u202e", amount: &typev1.Money{CurrencyCode: "eur"}}} {
			b, err := proto.Marshal(req.msg(w))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	pv, err := compiled()
	if err != nil {
		f.Fatal(err)
	}
	plan := natives()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, req := range writeRequests {
			m := req.msg(write{})
			if proto.Unmarshal(data, m) != nil {
				continue
			}
			if plan[m.ProtoReflect().Descriptor().FullName()].accepts(m.ProtoReflect()) {
				if err := pv.Validate(m); err != nil {
					t.Fatalf("BYPASS %s %v: native accepts, protovalidate says %v", req.name, m, err)
				}
			}
		}
	})
}
