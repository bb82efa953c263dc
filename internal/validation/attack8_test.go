package validation

// attack8: a differential attack on the native write path (native.go). The oracle is
// real protovalidate (protovalidate.New(), same descriptors); the property is
// "native accepts => protovalidate accepts". Written without reading the other tests of
// this package.

import (
	"context"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
)

func a8Oracle(t testing.TB) protovalidate.Validator {
	t.Helper()
	pv, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	return pv
}

// a8WriteMessages are the four money-moving requests.
func a8WriteMessages() []proto.Message {
	return []proto.Message{
		&accountsv1.TransferRequest{}, &accountsv1.DepositRequest{},
		&accountsv1.WithdrawRequest{}, &paymentsv1.CreatePaymentRequest{},
	}
}

const a8Crockford = "0123456789abcdefghjkmnpqrstvwxyz"

func a8AccountID(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString("acc_")
	b.WriteByte(a8Crockford[r.IntN(8)])
	for i := 0; i < 25; i++ {
		b.WriteByte(a8Crockford[r.IntN(32)])
	}
	return b.String()
}

// a8AccountIDs: valid ids and near misses.
func a8AccountIDs(r *rand.Rand) []string {
	v := a8AccountID(r)
	out := []string{
		v, a8AccountID(r), a8AccountID(r), "acc_00000000000000000000000000", "acc_7zzzzzzzzzzzzzzzzzzzzzzzzz",
		"", strings.ToUpper(v), "ACC_" + v[4:], v + "\n", "\n" + v, v + " ", " " + v, v + "\x00", v[:29],
		v + "0", "acc_8" + v[5:], "acc_" + v[5:] + "i", "acc_0" + strings.Repeat("l", 25), "acc_0" + strings.Repeat("o", 25),
		"acc_0" + strings.Repeat("u", 25), "acc_0" + strings.Repeat("A", 25), "аcc_" + v[4:], /* Cyrillic a */
		"acc_０" + v[5:], v[:10] + "\u00e9" + v[12:], v[:29] + "\xff", "acc-" + v[4:], "acc_" + v[4:] + "\r",
		"pay_" + strings.Repeat("A", 26), "txn_" + v[4:], "acc_" + strings.Repeat("0", 25) + "\u200b",
	}
	// every byte at every position of a valid id
	for i := 0; i < 6; i++ {
		p := r.IntN(30)
		c := byte(r.IntN(256))
		out = append(out, v[:p]+string([]byte{c})+v[p+1:])
	}
	return out
}

func a8IdemKey(r *rand.Rand) string {
	n := 1 + r.IntN(128)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('!' + r.IntN('~'-'!'+1))
	}
	return string(b)
}

func a8IdemKeys(r *rand.Rand) []string {
	k := a8IdemKey(r)
	return []string{
		k, "k", "~", "!", strings.Repeat("x", 128), strings.Repeat("x", 129), strings.Repeat("x", 127), "",
		" ", "a b", "a\x7f", "a\x80", "a\n", "\na", "é", "a\x00", k + "\t", "\u2028", "a\u00a0",
		strings.Repeat("é", 64), strings.Repeat("x", 127) + "é",
		k[:len(k)/2] + string([]byte{byte(r.IntN(256))}) + k[len(k)/2:],
	}
}

var a8Currencies = []string{"EUR", "USD", "JPY", "AAA", "ZZZ", "eur", "Eur", "EU", "EURO", "", "EU\n", "EUR\n", "\nEUR",
	"ÉUR", "\x00UR", "EUR\x00", "E R", "E1R", "@UR", "[UR", "`UR", "{UR", "ＥUR", "EU\u0301", "E\u200bU"}

var a8MinorUnits = []int64{math.MinInt64, math.MinInt64 + 1, -1e18, -1, 0, 1, 2, 2500, 1e18 - 1, 1e18, 1e18 + 1,
	math.MaxInt64 - 1, math.MaxInt64, 1 << 62, -(1 << 62), 1 << 32, 1<<31 - 1, 1 << 31, -(1 << 31)}

// a8Runes are the code points an attacker reaches for, around the rules' classes.
func a8Runes() []rune {
	var rs []rune
	for r := rune(0); r <= 0xa1; r++ {
		rs = append(rs, r)
	}
	rs = append(rs, 0xad, 0x61c, 0x200b, 0x200c, 0x200d, 0x200e, 0x200f, 0x2028, 0x2029, 0x2029, 0x202a, 0x202b,
		0x202c, 0x202d, 0x202e, 0x202f, 0x2060, 0x2065, 0x2066, 0x2067, 0x2068, 0x2069, 0x206a, 0xfeff, 0xfffd,
		0xfff9, 0xfffe, 0xffff, 0xe000, 0x10ffff, 0x1f600, 0xe0001, 0xe007f, 0x301, 0x85, 0x9f, 0xa0, 0x3000)
	return rs
}

// a8BadUTF8 are byte sequences that are not UTF-8: surrogates (CESU), overlongs, stray
// continuation bytes, truncations, code points above U+10FFFF.
var a8BadUTF8 = []string{"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\xbd\xed\xb8\x80", "\xc0\x80", "\xc1\xbf",
	"\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xe0\x81\x80", "\xc2\x85"[:1], "\x80", "\xbf", "\xff", "\xfe",
	"\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xe2\x80", "\xe2\x80\xaa"[:2], "\xc2"}

func a8Text(r *rand.Rand, rs []rune) string {
	var b strings.Builder
	switch r.IntN(10) {
	case 0: // near the byte boundary of bank.text, with runes of every width
		w := []string{"a", "é", "€", "😀", "\u00ad", "\ufeff", "\u2028"}[r.IntN(7)]
		n := 256/len(w) - 2 + r.IntN(5)
		b.WriteString(strings.Repeat(w, n))
		for b.Len() < 254+r.IntN(4) {
			b.WriteString("a")
		}
	case 1: // near the code point boundary of bank.text_chars
		w := []string{"a", "é", "€", "😀", "e\u0301", "\u0301"}[r.IntN(6)]
		for utf8.RuneCountInString(b.String()) < 198+r.IntN(5) {
			b.WriteString(w)
		}
	case 2: // one odd rune in plain text
		b.WriteString("pay rent ")
		b.WriteRune(rs[r.IntN(len(rs))])
		b.WriteString(" march")
	case 3: // one sequence that is not UTF-8
		b.WriteString("ref ")
		b.WriteString(a8BadUTF8[r.IntN(len(a8BadUTF8))])
	case 4:
		for i := r.IntN(8); i > 0; i-- {
			b.WriteRune(rs[r.IntN(len(rs))])
		}
	}
	return b.String()
}

// a8Random fills m with values from the pools (valid most of the time).
func a8Random(r *rand.Rand, m protoreflect.Message, rs []rune) {
	md := m.Descriptor()
	ids := a8AccountIDs(r)
	keys := a8IdemKeys(r)
	pick := func(pool []string) string {
		if r.IntN(5) > 0 {
			return pool[0]
		}
		return pool[r.IntN(len(pool))]
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		switch fd.Name() {
		case "from_account_id", "account_id":
			m.Set(fd, protoreflect.ValueOfString(pick(ids)))
		case "to_account_id":
			switch r.IntN(4) {
			case 0: // the same account
				m.Set(fd, m.Get(md.Fields().ByName("from_account_id")))
			default:
				m.Set(fd, protoreflect.ValueOfString(pick(ids[1:])))
			}
		case "idempotency_key":
			m.Set(fd, protoreflect.ValueOfString(pick(keys)))
		case "reference", "memo":
			m.Set(fd, protoreflect.ValueOfString(a8Text(r, rs)))
		case "void":
			m.Set(fd, protoreflect.ValueOfBool(r.IntN(2) == 0))
		case "amount":
			if r.IntN(20) == 0 {
				continue // unset
			}
			money := m.Mutable(fd).Message()
			cur := a8Currencies[0]
			if r.IntN(3) == 0 {
				cur = a8Currencies[r.IntN(len(a8Currencies))]
			}
			if cur != "" || r.IntN(2) == 0 {
				money.Set(money.Descriptor().Fields().ByName("currency_code"), protoreflect.ValueOfString(cur))
			}
			mu := int64(1 + r.IntN(1_000_000))
			if r.IntN(3) == 0 {
				mu = a8MinorUnits[r.IntN(len(a8MinorUnits))]
			}
			money.Set(money.Descriptor().Fields().ByName("minor_units"), protoreflect.ValueOfInt64(mu))
		}
	}
}

type a8Stats struct{ native, oracleOK, total int }

// a8Compare decides msg natively, through Check and with the oracle, and reports a bypass.
func a8Compare(t *testing.T, v *Validator, pv protovalidate.Validator, msg proto.Message, st *a8Stats, how string) {
	t.Helper()
	st.total++
	m := msg.ProtoReflect()
	nat := v.native[m.Descriptor().FullName()].accepts(m)
	oerr := pv.Validate(msg)
	cerr := v.Check(context.Background(), msg)
	if nat {
		st.native++
	}
	if oerr == nil {
		st.oracleOK++
	}
	if nat && oerr != nil {
		// FINDING: the native path accepts what protovalidate refuses.
		t.Errorf("FINDING (%s): native accepts %s %v; protovalidate refuses: %v", how, m.Descriptor().FullName(), msg, oerr)
	}
	if cerr == nil && oerr != nil {
		t.Errorf("FINDING (%s): Check accepts %v; protovalidate refuses: %v", how, msg, oerr)
	}
	if cerr != nil && oerr == nil {
		t.Errorf("(%s) Check refuses %v, which protovalidate accepts: %v", how, msg, cerr)
	}
}

func a8Validator(t *testing.T) *Validator {
	t.Helper()
	v, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range a8WriteMessages() {
		if v.native[msg.ProtoReflect().Descriptor().FullName()] == nil {
			t.Fatalf("%T is not planned natively: the attack would test nothing", msg)
		}
	}
	return v
}

// TestA8Differential decides many generated requests natively and with protovalidate.
func TestA8Differential(t *testing.T) {
	v, pv := a8Validator(t), a8Oracle(t)
	r := rand.New(rand.NewPCG(8, 8))
	rs := a8Runes()
	for _, proto0 := range a8WriteMessages() {
		var st a8Stats
		for i := 0; i < 6000; i++ {
			msg := proto0.ProtoReflect().New().Interface()
			a8Random(r, msg.ProtoReflect(), rs)
			a8Compare(t, v, pv, msg, &st, "in-process")
		}
		t.Logf("%T: %d requests, native accepted %d, protovalidate accepted %d", proto0, st.total, st.native, st.oracleOK)
		if st.native < st.total/20 || st.oracleOK == st.total {
			t.Errorf("%T: generator too weak: %+v", proto0, st)
		}
	}
}

// a8Valid returns a valid request of msg's type.
func a8Valid(r *rand.Rand, msg proto.Message) proto.Message {
	m := msg.ProtoReflect().New()
	md := m.Descriptor()
	set := func(name, s string) {
		if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
			m.Set(fd, protoreflect.ValueOfString(s))
		}
	}
	set("account_id", a8AccountID(r))
	set("from_account_id", a8AccountID(r))
	set("to_account_id", a8AccountID(r))
	set("idempotency_key", a8IdemKey(r))
	m.Set(md.Fields().ByName("amount"), protoreflect.ValueOfMessage((&typev1.Money{CurrencyCode: "EUR", MinorUnits: 100}).ProtoReflect()))
	return m.Interface()
}

// TestA8Exhaustive: every byte at every position of every string field of a valid request,
// every code point of the BMP and the supplementary planes in the text fields (against
// protovalidate in the BMP, against the rules' own regular expression beyond), every
// minor_units boundary.
func TestA8Exhaustive(t *testing.T) {
	v, pv := a8Validator(t), a8Oracle(t)
	r := rand.New(rand.NewPCG(1, 2))
	var st a8Stats
	for _, msg0 := range a8WriteMessages() {
		base := a8Valid(r, msg0)
		if err := pv.Validate(base); err != nil {
			t.Fatalf("base %v: %v", base, err)
		}
		md := base.ProtoReflect().Descriptor()
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			if fd.Kind() != protoreflect.StringKind {
				continue
			}
			s := base.ProtoReflect().Get(fd).String()
			if s == "" {
				s = "memo text"
			}
			for p := 0; p <= len(s); p++ {
				for c := 0; c < 256; c++ {
					for _, mut := range []string{s[:p] + string([]byte{byte(c)}) + s[min(p+1, len(s)):], s[:p] + string([]byte{byte(c)}) + s[p:]} {
						msg := proto.Clone(base)
						msg.ProtoReflect().Set(fd, protoreflect.ValueOfString(mut))
						a8Compare(t, v, pv, msg, &st, "byte mutation of "+string(fd.Name()))
					}
				}
			}
		}
		for _, mu := range a8MinorUnits {
			for _, cur := range a8Currencies {
				msg := proto.Clone(base)
				msg.ProtoReflect().Set(md.Fields().ByName("amount"), protoreflect.ValueOfMessage((&typev1.Money{CurrencyCode: cur, MinorUnits: mu}).ProtoReflect()))
				a8Compare(t, v, pv, msg, &st, "money")
			}
		}
		// empty Money, unset Money
		for _, amt := range []*typev1.Money{nil, {}, {MinorUnits: 5}, {CurrencyCode: "EUR"}} {
			msg := proto.Clone(base)
			if amt == nil {
				msg.ProtoReflect().Clear(md.Fields().ByName("amount"))
			} else {
				msg.ProtoReflect().Set(md.Fields().ByName("amount"), protoreflect.ValueOfMessage(amt.ProtoReflect()))
			}
			a8Compare(t, v, pv, msg, &st, "money presence")
		}
	}
	// every code point in the text fields
	re := regexp.MustCompile(textClass)
	dep := a8Valid(r, &accountsv1.DepositRequest{}).(*accountsv1.DepositRequest)
	pay := a8Valid(r, &paymentsv1.CreatePaymentRequest{}).(*paymentsv1.CreatePaymentRequest)
	for c := rune(0); c <= utf8.MaxRune; c++ {
		s := "x" + string(c) + "y"
		if c < 0x10000 {
			d := proto.Clone(dep).(*accountsv1.DepositRequest)
			d.Reference = s
			a8Compare(t, v, pv, d, &st, "code point in reference")
			p := proto.Clone(pay).(*paymentsv1.CreatePaymentRequest)
			p.Memo = s
			a8Compare(t, v, pv, p, &st, "code point in memo")
		}
		if isText(s) && re.MatchString(s) {
			t.Errorf("FINDING: isText accepts U+%04X, which %s matches", c, textClass)
		}
	}
	// every sequence of two bytes in the text fields (not UTF-8 for the most part)
	for a := 0x80; a < 0x100; a++ {
		for b := 0; b < 0x100; b += 1 {
			s := string([]byte{byte(a), byte(b)})
			d := proto.Clone(dep).(*accountsv1.DepositRequest)
			d.Reference = s
			if d.ProtoReflect().Descriptor() != nil && (v.native[d.ProtoReflect().Descriptor().FullName()].accepts(d.ProtoReflect())) && !utf8.ValidString(s) {
				t.Errorf("FINDING: native accepts reference %q, not UTF-8", s)
			}
		}
	}
	for _, s := range a8BadUTF8 {
		for _, msg := range []proto.Message{dep, pay} {
			m := proto.Clone(msg)
			f := m.ProtoReflect().Descriptor().Fields().ByName("reference")
			if f == nil {
				f = m.ProtoReflect().Descriptor().Fields().ByName("memo")
			}
			m.ProtoReflect().Set(f, protoreflect.ValueOfString("a"+s+"b"))
			a8Compare(t, v, pv, m, &st, "bad UTF-8")
		}
	}
	t.Logf("%d requests, native accepted %d, protovalidate accepted %d", st.total, st.native, st.oracleOK)
}

// a8Wire encodes a request by hand, as a hostile client would: fields in any order,
// repeated occurrences (last one wins for scalars, messages merge), Money split across
// occurrences, unknown fields, wrong wire types, non-minimal varints.
func a8Wire(r *rand.Rand, md protoreflect.MessageDescriptor, rs []rune) []byte {
	ids := a8AccountIDs(r)
	keys := a8IdemKeys(r)
	str := func(name protoreflect.Name) string {
		switch name {
		case "from_account_id", "account_id", "to_account_id":
			if r.IntN(3) > 0 {
				return ids[r.IntN(3)]
			}
			return ids[r.IntN(len(ids))]
		case "idempotency_key":
			if r.IntN(2) == 0 {
				return keys[0]
			}
			return keys[r.IntN(len(keys))]
		default:
			return a8Text(r, rs)
		}
	}
	varint := func(b []byte, v uint64) []byte {
		if r.IntN(8) == 0 { // non-minimal varint: padded with 0x80 continuation bytes
			for v >= 0x80 {
				b = append(b, byte(v)|0x80)
				v >>= 7
			}
			return append(b, byte(v)|0x80, 0x80, 0x00)
		}
		return protowire.AppendVarint(b, v)
	}
	money := func() []byte {
		var b []byte
		for n := 1 + r.IntN(2); n > 0; n-- {
			if r.IntN(4) > 0 {
				b = protowire.AppendTag(b, 1, protowire.BytesType)
				cur := a8Currencies[0]
				if r.IntN(3) == 0 {
					cur = a8Currencies[r.IntN(len(a8Currencies))]
				}
				b = protowire.AppendString(b, cur)
			}
			if r.IntN(4) > 0 {
				mu := int64(1 + r.IntN(1000))
				if r.IntN(3) == 0 {
					mu = a8MinorUnits[r.IntN(len(a8MinorUnits))]
				}
				switch r.IntN(8) {
				case 0: // wrong wire type: an unknown field to the decoder
					b = protowire.AppendTag(b, 2, protowire.Fixed64Type)
					b = protowire.AppendFixed64(b, uint64(mu))
				case 1: // packed form of a singular scalar
					var p []byte
					p = protowire.AppendVarint(p, uint64(mu))
					b = protowire.AppendTag(b, 2, protowire.BytesType)
					b = protowire.AppendBytes(b, p)
				default:
					b = protowire.AppendTag(b, 2, protowire.VarintType)
					b = varint(b, uint64(mu))
				}
			}
			if r.IntN(6) == 0 {
				b = protowire.AppendTag(b, protowire.Number(3+r.IntN(100)), protowire.BytesType)
				b = protowire.AppendString(b, "junk")
			}
		}
		return b
	}
	var b []byte
	for n := 1 + r.IntN(3); n > 0; n-- {
		fields := md.Fields()
		for _, i := range r.Perm(fields.Len()) {
			fd := fields.Get(i)
			if r.IntN(8) == 0 && n > 1 {
				continue
			}
			switch fd.Kind() {
			case protoreflect.StringKind:
				b = protowire.AppendTag(b, fd.Number(), protowire.BytesType)
				b = protowire.AppendString(b, str(fd.Name()))
			case protoreflect.MessageKind:
				if r.IntN(12) == 0 {
					continue
				}
				b = protowire.AppendTag(b, fd.Number(), protowire.BytesType)
				b = protowire.AppendBytes(b, money())
			case protoreflect.BoolKind:
				b = protowire.AppendTag(b, fd.Number(), protowire.VarintType)
				b = varint(b, uint64(r.IntN(3)))
			}
		}
		if r.IntN(5) == 0 { // unknown field, or a known number with another wire type
			num := protowire.Number(1 + r.IntN(12))
			b = protowire.AppendTag(b, num, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, r.Uint32())
		}
	}
	return b
}

// TestA8Wire decodes hand-made wire bytes as gRPC's codec does (proto.Unmarshal) and
// decides the decoded request both ways.
func TestA8Wire(t *testing.T) {
	v, pv := a8Validator(t), a8Oracle(t)
	r := rand.New(rand.NewPCG(3, 4))
	rs := a8Runes()
	for _, msg0 := range a8WriteMessages() {
		var st a8Stats
		decodeErr := 0
		for i := 0; i < 6000; i++ {
			b := a8Wire(r, msg0.ProtoReflect().Descriptor(), rs)
			msg := msg0.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(b, msg); err != nil {
				decodeErr++
				continue // the codec refuses it before validation
			}
			a8Compare(t, v, pv, msg, &st, "wire")
			// re-encoding and decoding the decoded request changes nothing
			b2, err := proto.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			msg2 := msg0.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(b2, msg2); err != nil {
				t.Fatal(err)
			}
			a8Compare(t, v, pv, msg2, &st, "wire re-encoded")
		}
		t.Logf("%T: %d decoded, %d refused by the decoder, native accepted %d, protovalidate %d", msg0, st.total, decodeErr, st.native, st.oracleOK)
		if st.native == 0 {
			t.Errorf("%T: no wire request accepted natively: generator too weak", msg0)
		}
	}
}

// TestA8Odd: shapes of call that are not a decoded request: a nil message, a message of
// the same name from another descriptor (dynamicpb), a dynamicpb message of the same
// descriptor. None may panic; none may be accepted where protovalidate refuses.
func TestA8Odd(t *testing.T) {
	v, pv := a8Validator(t), a8Oracle(t)
	for _, msg := range a8WriteMessages() {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("FINDING: Check of a nil %T panics: %v", msg, p)
				}
			}()
			nilMsg := msg.ProtoReflect().Type().Zero().Interface()
			if err := v.Check(context.Background(), nilMsg); err == nil {
				t.Errorf("Check accepts a nil %T", msg)
			}
		}()
		// a dynamic message of the very same descriptor
		r := rand.New(rand.NewPCG(5, 6))
		good := a8Valid(r, msg)
		dyn := dynamicpb.NewMessage(msg.ProtoReflect().Descriptor())
		b, _ := proto.Marshal(good)
		if err := proto.Unmarshal(b, dyn); err != nil {
			t.Fatal(err)
		}
		var st a8Stats
		a8Compare(t, v, pv, dyn, &st, "dynamicpb")
		// a bad one
		dyn2 := dynamicpb.NewMessage(msg.ProtoReflect().Descriptor())
		proto.Merge(dyn2, dyn)
		dyn2.Set(dyn2.Descriptor().Fields().ByName("idempotency_key"), protoreflect.ValueOfString("has space"))
		a8Compare(t, v, pv, dyn2, &st, "dynamicpb bad")
	}
}

// a8Resolver resolves first in extra, then in the linked-in files.
type a8Resolver struct{ extra *protoregistry.Files }

func (r a8Resolver) FindFileByPath(p string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.extra.FindFileByPath(p); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(p)
}

func (r a8Resolver) FindDescriptorByName(n protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.extra.FindDescriptorByName(n); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(n)
}

func a8Build(t *testing.T, extra *protoregistry.Files, fdp *descriptorpb.FileDescriptorProto) protoreflect.FileDescriptor {
	t.Helper()
	fd, err := protodesc.NewFile(fdp, a8Resolver{extra})
	if err != nil {
		t.Fatalf("build %s: %v", fdp.GetName(), err)
	}
	if err := extra.RegisterFile(fd); err != nil {
		t.Fatal(err)
	}
	return fd
}

// a8Plan plans md alone and decides n generated messages of it natively and with the
// oracle; it returns how many native accepted. A native acceptance the oracle refuses
// is a FINDING.
func a8Plan(t *testing.T, pv protovalidate.Validator, md protoreflect.MessageDescriptor, n int, mutate func(*rand.Rand, protoreflect.Message), name string) (planned bool, accepted int) {
	t.Helper()
	plan := planNative([]protoreflect.MessageDescriptor{md})[md.FullName()]
	r := rand.New(rand.NewPCG(9, uint64(len(name))))
	rs := a8Runes()
	for i := 0; i < n; i++ {
		m := dynamicpb.NewMessage(md)
		a8Random(r, m, rs)
		if mutate != nil {
			mutate(r, m)
		}
		if !plan.accepts(m) {
			continue
		}
		accepted++
		if err := pv.Validate(m); err != nil {
			// FINDING: the planner took a rule it does not implement.
			t.Errorf("FINDING (%s): native plan accepts %v; protovalidate refuses: %v", name, m, err)
			return plan != nil, accepted
		}
	}
	return plan != nil, accepted
}

func a8Opts(rules *validate.FieldRules) *descriptorpb.FieldOptions {
	o := &descriptorpb.FieldOptions{}
	proto.SetExtension(o, validate.E_Field, rules)
	return o
}

// TestA8ForeignPredefinedExtension: a predefined rule of another file that extends
// buf.validate.StringRules with the field number of bank.account_id (52100) and the
// same id, but another expression. protovalidate evaluates the rule of the extension the
// field sets; the planner compares the StringRules with proto.Equal, which matches
// extensions by field number, not by descriptor.
func TestA8ForeignPredefinedExtension(t *testing.T) {
	pv := a8Oracle(t)
	extra := new(protoregistry.Files)
	predef := &descriptorpb.FieldOptions{}
	only := "acc_00000000000000000000000000"
	proto.SetExtension(predef, validate.E_Predefined, &validate.PredefinedRules{Cel: []*validate.Rule{{
		Id: proto.String("bank.account_id"), Message: proto.String("only one account"),
		Expression: proto.String("!rule || this == '" + only + "'"),
	}}})
	evil := a8Build(t, extra, &descriptorpb.FileDescriptorProto{
		Name: proto.String("a8/evil.proto"), Package: proto.String("a8evil"), Syntax: proto.String("proto2"),
		Dependency: []string{"buf/validate/validate.proto"},
		Extension: []*descriptorpb.FieldDescriptorProto{{
			Name: proto.String("account_id"), Number: proto.Int32(52100), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			Type: descriptorpb.FieldDescriptorProto_TYPE_BOOL.Enum(), Extendee: proto.String(".buf.validate.StringRules"),
			JsonName: proto.String("accountId"), Options: predef,
		}},
	})
	xt := dynamicpb.NewExtensionType(evil.Extensions().Get(0))
	sr := &validate.StringRules{}
	proto.SetExtension(sr, xt, true)
	req := a8Build(t, extra, &descriptorpb.FileDescriptorProto{
		Name: proto.String("a8/req.proto"), Package: proto.String("a8req"), Syntax: proto.String("proto3"),
		Dependency: []string{"buf/validate/validate.proto", "a8/evil.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Req"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("account_id"), Number: proto.Int32(1), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), JsonName: proto.String("accountId"),
				Options: a8Opts(&validate.FieldRules{Required: proto.Bool(true), Type: &validate.FieldRules_String_{String_: sr}}),
			}},
		}},
	})
	md := req.Messages().Get(0)
	m := dynamicpb.NewMessage(md)
	m.Set(md.Fields().Get(0), protoreflect.ValueOfString("acc_1zzzzzzzzzzzzzzzzzzzzzzzzz"))
	oerr := pv.Validate(m)
	if oerr == nil {
		t.Fatalf("the oracle does not apply the foreign rule: the test is void")
	}
	plan := planNative([]protoreflect.MessageDescriptor{md})[md.FullName()]
	if plan.accepts(m) {
		// The finding (low: needs a descriptor with a conflicting extension number),
		// fixed: the planner takes a predefined rule only when the field sets the bank's
		// own extension (native.go, sets).
		t.Errorf("native accepts %v under a foreign predefined rule numbered like bank.account_id; protovalidate refuses: %v", m, oerr)
	}
	m.Set(md.Fields().Get(0), protoreflect.ValueOfString(only))
	if err := pv.Validate(m); err != nil {
		t.Fatalf("oracle refuses the one id its rule allows: %v", err)
	}
}

// a8TransferCopy is TransferRequest (and a copy of Money), as FileDescriptorProtos of a
// package of its own, for edits.
func a8TransferCopy() (*descriptorpb.FileDescriptorProto, *descriptorpb.FileDescriptorProto) {
	acc := protodesc.ToFileDescriptorProto(accountsv1.File_bank_accounts_v1_accounts_proto)
	money := protodesc.ToFileDescriptorProto(typev1.File_bank_type_v1_money_proto)
	var tr *descriptorpb.DescriptorProto
	for _, m := range acc.MessageType {
		if m.GetName() == "TransferRequest" {
			tr = proto.Clone(m).(*descriptorpb.DescriptorProto)
		}
	}
	money.Name = proto.String("a8/money.proto")
	money.Package = proto.String("a8copy")
	for _, f := range tr.Field {
		if f.GetTypeName() == ".bank.type.v1.Money" {
			f.TypeName = proto.String(".a8copy.Money")
		}
	}
	file := &descriptorpb.FileDescriptorProto{
		Name: proto.String("a8/transfer.proto"), Package: proto.String("a8copy"), Syntax: proto.String("proto3"),
		Dependency:  []string{"bank/type/v1/rules.proto", "buf/validate/validate.proto", "a8/money.proto"},
		MessageType: []*descriptorpb.DescriptorProto{tr},
	}
	return file, money
}

func a8Field(m *descriptorpb.DescriptorProto, name string) *descriptorpb.FieldDescriptorProto {
	for _, f := range m.Field {
		if f.GetName() == name {
			return f
		}
	}
	panic(name)
}

func a8FieldRules(f *descriptorpb.FieldDescriptorProto) *validate.FieldRules {
	return proto.GetExtension(f.GetOptions(), validate.E_Field).(*validate.FieldRules)
}

// TestA8PlannerEdits edits the rules of TransferRequest and Money and requires that
// whatever the planner then accepts, protovalidate accepts too.
func TestA8PlannerEdits(t *testing.T) {
	pv := a8Oracle(t)
	longText := func(n int) func(*rand.Rand, protoreflect.Message) {
		return func(r *rand.Rand, m protoreflect.Message) {
			if r.IntN(2) == 0 {
				m.Set(m.Descriptor().Fields().ByName("reference"), protoreflect.ValueOfString(strings.Repeat("x", r.IntN(n))))
			}
		}
	}
	cases := []struct {
		name       string
		edit       func(tr, money *descriptorpb.FileDescriptorProto)
		mutate     func(*rand.Rand, protoreflect.Message)
		wantNative bool // the edit keeps the message native
	}{
		{name: "unchanged", edit: func(_, _ *descriptorpb.FileDescriptorProto) {}, wantNative: true},
		{name: "text = 100", mutate: longText(300), edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			f := a8Field(tr.MessageType[0], "reference")
			fr := a8FieldRules(f)
			proto.SetExtension(fr.GetString(), typev1.E_Text, uint32(100))
			proto.SetExtension(f.Options, validate.E_Field, fr)
		}},
		{name: "text plus max_len", mutate: longText(300), edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			f := a8Field(tr.MessageType[0], "reference")
			fr := a8FieldRules(f)
			fr.GetString().MaxLen = proto.Uint64(10)
			proto.SetExtension(f.Options, validate.E_Field, fr)
		}},
		{name: "text_chars instead of text", mutate: longText(300), edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			f := a8Field(tr.MessageType[0], "reference")
			sr := &validate.StringRules{}
			proto.SetExtension(sr, typev1.E_TextChars, uint32(256))
			proto.SetExtension(f.Options, validate.E_Field, &validate.FieldRules{Type: &validate.FieldRules_String_{String_: sr}})
		}, wantNative: false},
		{name: "cel on a string field", edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			f := a8Field(tr.MessageType[0], "idempotency_key")
			fr := a8FieldRules(f)
			fr.Cel = append(fr.Cel, &validate.Rule{Id: proto.String("k"), Expression: proto.String("this.size() > 20")})
			proto.SetExtension(f.Options, validate.E_Field, fr)
		}},
		{name: "self_transfer with another expression", edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			mr := proto.GetExtension(tr.MessageType[0].Options, validate.E_Message).(*validate.MessageRules)
			mr.Cel[0].Expression = proto.String("this.from_account_id.startsWith('acc_0')")
			proto.SetExtension(tr.MessageType[0].Options, validate.E_Message, mr)
		}},
		{name: "amount.positive rule on a message of another shape", edit: func(_, money *descriptorpb.FileDescriptorProto) {
			a8Field(money.MessageType[0], "minor_units").Type = descriptorpb.FieldDescriptorProto_TYPE_SINT64.Enum()
		}},
		{name: "Money.minor_units in a oneof", edit: func(_, money *descriptorpb.FileDescriptorProto) {
			money.MessageType[0].OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("o")}}
			a8Field(money.MessageType[0], "minor_units").OneofIndex = proto.Int32(0)
		}, wantNative: true},
		{name: "Money with a rule on minor_units", edit: func(_, money *descriptorpb.FileDescriptorProto) {
			a8Field(money.MessageType[0], "minor_units").Options = a8Opts(&validate.FieldRules{Type: &validate.FieldRules_Int64{Int64: &validate.Int64Rules{LessThan: &validate.Int64Rules_Lt{Lt: 500}}}})
		}},
		{name: "Money message rule", edit: func(_, money *descriptorpb.FileDescriptorProto) {
			o := &descriptorpb.MessageOptions{}
			proto.SetExtension(o, validate.E_Message, &validate.MessageRules{Cel: []*validate.Rule{{Id: proto.String("m"), Expression: proto.String("this.minor_units < 500")}}})
			money.MessageType[0].Options = o
		}},
		{name: "Money message rule with a native id and expression", edit: func(_, money *descriptorpb.FileDescriptorProto) {
			o := &descriptorpb.MessageOptions{}
			proto.SetExtension(o, validate.E_Message, &validate.MessageRules{Cel: []*validate.Rule{{Id: proto.String("bank.amount.max"), Expression: proto.String("this.minor_units <= 1000000000000000000")}}})
			money.MessageType[0].Options = o
		}, wantNative: true},
		{name: "message oneof rule", edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			mr := proto.GetExtension(tr.MessageType[0].Options, validate.E_Message).(*validate.MessageRules)
			mr.Oneof = []*validate.MessageOneofRule{{Fields: []string{"reference", "void"}, Required: proto.Bool(true)}}
			proto.SetExtension(tr.MessageType[0].Options, validate.E_Message, mr)
		}},
		{name: "added repeated field with rules", edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			tr.MessageType[0].Field = append(tr.MessageType[0].Field, &descriptorpb.FieldDescriptorProto{
				Name: proto.String("tags"), Number: proto.Int32(7), Label: descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum(),
				Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), JsonName: proto.String("tags"),
				Options: a8Opts(&validate.FieldRules{Type: &validate.FieldRules_Repeated{Repeated: &validate.RepeatedRules{MinItems: proto.Uint64(1)}}}),
			})
		}},
		{name: "added message field without rules", edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			tr.MessageType[0].Field = append(tr.MessageType[0].Field, &descriptorpb.FieldDescriptorProto{
				Name: proto.String("fee"), Number: proto.Int32(8), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".a8copy.Money"), JsonName: proto.String("fee"),
			})
		}, mutate: func(r *rand.Rand, m protoreflect.Message) {
			if r.IntN(2) == 0 {
				m.Set(m.Descriptor().Fields().ByName("fee"), protoreflect.ValueOfMessage(m.Mutable(m.Descriptor().Fields().ByName("amount")).Message()))
				fee := m.Mutable(m.Descriptor().Fields().ByName("fee")).Message()
				fee.Set(fee.Descriptor().Fields().ByName("currency_code"), protoreflect.ValueOfString("eur"))
			}
		}},
		{name: "ignore always on from_account_id", edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			f := a8Field(tr.MessageType[0], "from_account_id")
			fr := a8FieldRules(f)
			fr.Ignore = validate.Ignore_IGNORE_ALWAYS.Enum()
			proto.SetExtension(f.Options, validate.E_Field, fr)
		}},
		{name: "reference in a oneof with a required oneof rule", edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			o := &descriptorpb.OneofOptions{}
			proto.SetExtension(o, validate.E_Oneof, &validate.OneofRules{Required: proto.Bool(true)})
			tr.MessageType[0].OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("o"), Options: o}}
			a8Field(tr.MessageType[0], "reference").OneofIndex = proto.Int32(0)
		}, mutate: func(r *rand.Rand, m protoreflect.Message) {
			if r.IntN(2) == 0 {
				m.Clear(m.Descriptor().Fields().ByName("reference"))
			}
		}},
		{name: "proto2 with a default for from_account_id and reference", edit: func(tr, money *descriptorpb.FileDescriptorProto) {
			tr.Syntax = proto.String("proto2")
			money.Syntax = proto.String("proto2")
			a8Field(tr.MessageType[0], "from_account_id").DefaultValue = proto.String("acc_00000000000000000000000000")
			a8Field(tr.MessageType[0], "reference").DefaultValue = proto.String("\x01")
			a8Field(money.MessageType[0], "minor_units").DefaultValue = proto.String("5")
			a8Field(money.MessageType[0], "currency_code").DefaultValue = proto.String("EUR")
		}, mutate: func(r *rand.Rand, m protoreflect.Message) {
			for _, n := range []protoreflect.Name{"from_account_id", "reference", "to_account_id"} {
				if r.IntN(3) == 0 {
					m.Clear(m.Descriptor().Fields().ByName(n))
				}
			}
			money := m.Mutable(m.Descriptor().Fields().ByName("amount")).Message()
			for i := 0; i < 2; i++ {
				if r.IntN(2) == 0 {
					money.Clear(money.Descriptor().Fields().Get(i))
				}
			}
		}, wantNative: true},
		{name: "rules as unknown option bytes with another text length", edit: func(tr, _ *descriptorpb.FileDescriptorProto) {
			f := a8Field(tr.MessageType[0], "reference")
			sr := &validate.StringRules{}
			proto.SetExtension(sr, typev1.E_Text, uint32(10))
			fr := &validate.FieldRules{Type: &validate.FieldRules_String_{String_: sr}}
			b, _ := proto.Marshal(fr)
			var raw []byte
			raw = protowire.AppendTag(raw, validate.E_Field.TypeDescriptor().Number(), protowire.BytesType)
			raw = protowire.AppendBytes(raw, b)
			o := &descriptorpb.FieldOptions{}
			o.ProtoReflect().SetUnknown(raw)
			f.Options = o
		}, mutate: longText(300)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			trf, moneyf := a8TransferCopy()
			c.edit(trf, moneyf)
			extra := new(protoregistry.Files)
			a8Build(t, extra, moneyf)
			fd := a8Build(t, extra, trf)
			md := fd.Messages().Get(0)
			planned, accepted := a8Plan(t, pv, md, 3000, c.mutate, c.name)
			t.Logf("planned %v, native accepted %d of 3000", planned, accepted)
			if c.wantNative && accepted == 0 {
				t.Errorf("expected a native plan that accepts")
			}
		})
	}
}

// TestA8SameNameOtherDescriptor: a message named bank.accounts.v1.TransferRequest from
// another descriptor, whose reference has no rule, must not be accepted natively by the
// plan of the real TransferRequest (it would be accepted without its rules being read).
func TestA8SameNameOtherDescriptor(t *testing.T) {
	v := a8Validator(t)
	trf, moneyf := a8TransferCopy()
	trf.Package = proto.String("bank.accounts.v1")
	trf.Name = proto.String("a8/same_name.proto")
	a8Field(trf.MessageType[0], "reference").Options = nil
	extra := new(protoregistry.Files)
	a8Build(t, extra, moneyf)
	md := a8Build(t, extra, trf).Messages().Get(0)
	if md.FullName() != (&accountsv1.TransferRequest{}).ProtoReflect().Descriptor().FullName() {
		t.Fatal(md.FullName())
	}
	r := rand.New(rand.NewPCG(11, 12))
	good := a8Valid(r, &accountsv1.TransferRequest{})
	b, _ := proto.Marshal(good)
	m := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	m.Set(md.Fields().ByName("reference"), protoreflect.ValueOfString("\u202eevil"))
	if v.native[md.FullName()].accepts(m) {
		t.Errorf("FINDING: the native plan of TransferRequest accepts a message of another descriptor of that name: %v", m)
	}
}

// FuzzA8Wire: wire bytes decoded as each write request; native accepts => protovalidate
// accepts. Run at most 60 s at a time.
func FuzzA8Wire(f *testing.F) {
	r := rand.New(rand.NewPCG(13, 14))
	rs := a8Runes()
	for _, msg := range a8WriteMessages() {
		for i := 0; i < 8; i++ {
			f.Add(a8Wire(r, msg.ProtoReflect().Descriptor(), rs))
		}
	}
	v, err := New(nil)
	if err != nil {
		f.Fatal(err)
	}
	pv, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, msg0 := range a8WriteMessages() {
			msg := msg0.ProtoReflect().New().Interface()
			if proto.Unmarshal(b, msg) != nil {
				continue
			}
			m := msg.ProtoReflect()
			if v.native[m.Descriptor().FullName()].accepts(m) {
				if err := pv.Validate(msg); err != nil {
					t.Errorf("FINDING: native accepts %v; protovalidate refuses: %v", msg, err)
				}
			}
		}
	})
}

// TestA8Cost: the largest text a gRPC message can carry (4 MiB) in every text field, and
// the largest ids and keys, are decided in linear time, without a panic, and refused.
func TestA8Cost(t *testing.T) {
	v, pv := a8Validator(t), a8Oracle(t)
	r := rand.New(rand.NewPCG(15, 16))
	big := strings.Repeat("€", 4<<20/3)
	for _, msg0 := range a8WriteMessages() {
		md := msg0.ProtoReflect().Descriptor()
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			if fd.Kind() != protoreflect.StringKind {
				continue
			}
			msg := a8Valid(r, msg0)
			msg.ProtoReflect().Set(fd, protoreflect.ValueOfString(big))
			start := time.Now()
			nat := v.native[md.FullName()].accepts(msg.ProtoReflect())
			if d := time.Since(start); d > 200*time.Millisecond {
				t.Errorf("native decides a 4 MiB %s in %v", fd.Name(), d)
			}
			if nat {
				t.Errorf("FINDING: native accepts a 4 MiB %s", fd.Name())
			}
			if pv.Validate(msg) == nil {
				t.Errorf("protovalidate accepts a 4 MiB %s", fd.Name())
			}
		}
	}
}
