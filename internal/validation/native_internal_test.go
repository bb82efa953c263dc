package validation

import (
	"math/rand/v2"
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
)

// TestNativePlan: the hot reads are planned (the gain cannot vanish unnoticed), messages
// with other rules are not, and every rule of a planned message is checked natively.
func TestNativePlan(t *testing.T) {
	plan := natives()
	for _, m := range []proto.Message{
		&accountsv1.GetAccountRequest{}, &paymentsv1.GetPaymentRequest{},
		&accountsv1.TransferRequest{}, &paymentsv1.CreatePaymentRequest{}, &accountsv1.DepositRequest{}, &accountsv1.WithdrawRequest{},
	} {
		if _, ok := plan[m.ProtoReflect().Descriptor().FullName()]; !ok {
			t.Errorf("%s is not checked natively", m.ProtoReflect().Descriptor().FullName())
		}
	}
	for _, m := range []proto.Message{
		&accountsv1.OpenAccountRequest{}, &accountsv1.ListAccountsRequest{}, &paymentsv1.ListPaymentsRequest{},
	} {
		if _, ok := plan[m.ProtoReflect().Descriptor().FullName()]; ok {
			t.Errorf("%s, whose rules are not all native, is checked natively", m.ProtoReflect().Descriptor().FullName())
		}
	}
	for name, c := range plan {
		md, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			t.Fatal(err)
		}
		fields := md.(protoreflect.MessageDescriptor).Fields()
		withRules := 0
		for i := 0; i < fields.Len(); i++ {
			if rules, err := fieldRules(fields.Get(i)); err != nil || rules != nil {
				withRules++
			}
		}
		if withRules != len(c.fields) {
			t.Errorf("%s: %d fields with rules, %d checked natively", name, withRules, len(c.fields))
		}
		if mr, err := protovalidate.ResolveMessageRules(md.(protoreflect.MessageDescriptor)); err != nil || len(mr.GetCel()) != len(c.rules) {
			t.Errorf("%s: %d message rules, %d checked natively (%v)", name, len(mr.GetCel()), len(c.rules), err)
		}
	}
}

// TestNativeRulesMatchRulesProto: each native rule implements the expression rules.proto
// declares; an edit of rules.proto fails here rather than silently turning the native
// path off (it would not accept anything wrong: it would stop being used).
func TestNativeRulesMatchRulesProto(t *testing.T) {
	for _, r := range nativeRules {
		if !r.usable() {
			t.Errorf("native rule %s: rules.proto declares another expression than %q", r.id, r.expression)
		}
		edited := r
		edited.expression += " && true"
		if edited.usable() {
			t.Errorf("native rule %s is used with an expression rules.proto does not declare", r.id)
		}
		edited = r
		edited.id += "x"
		if edited.usable() {
			t.Errorf("native rule %s is used under another rule id", r.id)
		}
	}
}

// shape is `required` and r.
func (r nativeRule) shape() *validate.FieldRules {
	return &validate.FieldRules{Required: proto.Bool(true), Type: &validate.FieldRules_String_{String_: r.rules()}}
}

// TestNativeShapes: a string field is native with `required` or not and exactly one usable
// predefined rule with the value its Go implements; anything more, less or other is not.
func TestNativeShapes(t *testing.T) {
	r := nativeRules[0]
	md := (&accountsv1.GetAccountRequest{}).ProtoReflect().Descriptor()
	plannerOf := func(rules ...nativeRule) *planner {
		return &planner{rules: rules, plans: make(map[protoreflect.MessageDescriptor]*nativeCheck)}
	}
	if c := plannerOf(r).message(md); c == nil || len(c.fields) != 1 || !c.fields[0].required {
		t.Fatalf("GetAccountRequest not planned: %v", c)
	}
	if c := plannerOf().message(md); c != nil {
		t.Fatal("GetAccountRequest planned although its rule is not usable")
	}
	fd := md.Fields().Get(0)
	p := plannerOf(nativeRules...)
	notRequired := r.shape()
	notRequired.Required = nil
	for name, rules := range map[string]*validate.FieldRules{"required": r.shape(), "not required": notRequired} {
		if f, ok := p.field(fd, rules); !ok || f.required != rules.GetRequired() {
			t.Errorf("%s: not a native shape", name)
		}
	}
	more := r.shape()
	more.GetString().MaxLen = proto.Uint64(64)
	twoRules := r.shape()
	proto.SetExtension(twoRules.GetString(), typev1.E_PaymentId, true)
	ruleFalse := r.shape()
	proto.SetExtension(ruleFalse.GetString(), r.ext, false)
	otherLength := &validate.FieldRules{Type: &validate.FieldRules_String_{String_: &validate.StringRules{}}}
	proto.SetExtension(otherLength.GetString(), typev1.E_Text, uint32(textBytes-1))
	withCEL := r.shape()
	withCEL.Cel = []*validate.Rule{{Id: proto.String("bank.amount.positive"), Expression: proto.String("this.minor_units > 0")}}
	ignored := r.shape()
	ignored.Ignore = validate.Ignore_IGNORE_IF_ZERO_VALUE.Enum()
	requiredOnly := &validate.FieldRules{Required: proto.Bool(true)}
	for name, rules := range map[string]*validate.FieldRules{
		"one more rule": more, "two predefined rules": twoRules, "rule = false": ruleFalse,
		"another text length": otherLength, "a CEL rule": withCEL, "ignore": ignored, "required only": requiredOnly,
	} {
		if _, ok := p.field(fd, rules); ok {
			t.Errorf("%s: taken for a native shape", name)
		}
	}
}

// TestNativeMatchesProtovalidate decides ids both ways and requires the same answer: valid
// ids, every byte at every position, every length around the valid one, case, Unicode,
// random strings over the alphabets and beyond.
func TestNativeMatchesProtovalidate(t *testing.T) {
	pv, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	plan := natives()
	cases := []struct {
		msg   func(string) proto.Message
		valid []string
	}{
		{
			msg:   func(s string) proto.Message { return &accountsv1.GetAccountRequest{Id: s} },
			valid: []string{"acc_0000000000000000000000000", "acc_7zzzzzzzzzzzzzzzzzzzzzzzzz", "acc_3kq9vd2mx8b1w4n7p0rst5yz6h"},
		},
		{
			msg:   func(s string) proto.Message { return &paymentsv1.GetPaymentRequest{Id: s} },
			valid: []string{"pay_AAAAAAAAAAAAAAAAAAAAAAAAAA", "pay_77777777777777777777777777", "pay_QWERTYUIOPASDFGHJKLZXCVB23"},
		},
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for _, tc := range cases {
		name := tc.msg("").ProtoReflect().Descriptor().FullName()
		check, ok := plan[name]
		if !ok {
			t.Fatalf("%s not planned", name)
		}
		var ids []string
		for _, v := range tc.valid {
			ids = append(ids, v, strings.ToUpper(v), strings.ToLower(v), v[:len(v)-1], v+"0", v+"\n", " "+v, "\x00"+v[1:])
			for i := range len(v) {
				for c := range 256 {
					ids = append(ids, v[:i]+string(rune(c))+v[i+1:], v[:i]+string([]byte{byte(c)})+v[i+1:])
				}
				ids = append(ids, v[:i], v[:i]+v[i+1:], v[:i]+"é"+v[min(i+2, len(v)):])
			}
		}
		for range 20000 {
			b := make([]byte, 26+rng.IntN(9))
			const alphabet = "acpy_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\x00\xff"
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			prefix := []string{"acc_", "pay_", "", "ACC_"}[rng.IntN(4)]
			ids = append(ids, prefix+string(b[:len(b)-4]))
		}
		accepted := 0
		for _, id := range ids {
			m := tc.msg(id)
			native := check.accepts(m.ProtoReflect())
			lib := pv.Validate(m) == nil
			if native != lib {
				t.Fatalf("%s{id: %q}: native %v, protovalidate %v", name, id, native, lib)
			}
			if native {
				accepted++
			}
		}
		if accepted < len(tc.valid) {
			t.Fatalf("%s: only %d of %d ids accepted", name, accepted, len(ids))
		}
		t.Logf("%s: %d ids, %d valid, same answers", name, len(ids), accepted)
	}
}
