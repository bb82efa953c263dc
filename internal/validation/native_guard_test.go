package validation

import (
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
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

// ruleSet is the rules of a write request and of its Money, as protovalidate reads them,
// for a test to edit.
type ruleSet struct {
	msg, money          *validate.MessageRules
	fields, moneyFields map[protoreflect.Name]*validate.FieldRules // nil: no rules
}

// edited returns a copy of the request md and of Money, in a file of their own, with the
// rules as edit leaves them and the descriptors as reshape leaves them (either may be nil).
func edited(t *testing.T, md protoreflect.MessageDescriptor, edit func(*ruleSet), reshape func(msg, money *descriptorpb.DescriptorProto)) protoreflect.MessageDescriptor {
	t.Helper()
	moneyMD := (&typev1.Money{}).ProtoReflect().Descriptor()
	rs := &ruleSet{msg: messageRules(t, md), money: messageRules(t, moneyMD), fields: allFieldRules(t, md), moneyFields: allFieldRules(t, moneyMD)}
	if edit != nil {
		edit(rs)
	}
	msg, money := protodesc.ToDescriptorProto(md), protodesc.ToDescriptorProto(moneyMD)
	setRules(msg, rs.msg, rs.fields)
	setRules(money, rs.money, rs.moneyFields)
	for _, f := range msg.Field {
		if f.GetName() == "amount" {
			f.TypeName = proto.String(".edit.Money")
		}
	}
	if reshape != nil {
		reshape(msg, money)
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("edit/" + msg.GetName() + ".proto"), Package: proto.String("edit"), Syntax: proto.String("proto3"),
		Dependency:  []string{"buf/validate/validate.proto", "bank/type/v1/rules.proto"},
		MessageType: []*descriptorpb.DescriptorProto{msg, money},
	}, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().Get(0)
}

func messageRules(t *testing.T, md protoreflect.MessageDescriptor) *validate.MessageRules {
	t.Helper()
	mr, err := protovalidate.ResolveMessageRules(md)
	if err != nil {
		t.Fatal(err)
	}
	if mr == nil {
		return &validate.MessageRules{}
	}
	return proto.CloneOf(mr)
}

func allFieldRules(t *testing.T, md protoreflect.MessageDescriptor) map[protoreflect.Name]*validate.FieldRules {
	t.Helper()
	out := make(map[protoreflect.Name]*validate.FieldRules)
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		rules, err := fieldRules(fd)
		if err != nil {
			t.Fatal(err)
		}
		if rules != nil {
			out[fd.Name()] = proto.CloneOf(rules)
		}
	}
	return out
}

// setRules replaces the options of msg and its fields by rules.
func setRules(msg *descriptorpb.DescriptorProto, mr *validate.MessageRules, fields map[protoreflect.Name]*validate.FieldRules) {
	msg.Options = &descriptorpb.MessageOptions{}
	if proto.Size(mr) > 0 {
		proto.SetExtension(msg.Options, validate.E_Message, mr)
	}
	for _, f := range msg.Field {
		f.Options = nil
		if rules := fields[protoreflect.Name(f.GetName())]; rules != nil {
			f.Options = &descriptorpb.FieldOptions{}
			proto.SetExtension(f.Options, validate.E_Field, rules)
		}
	}
}

// dynamicWrite is w in a message of md, a copy of a write request, whatever the kinds of
// its fields.
func dynamicWrite(md protoreflect.MessageDescriptor, w write) protoreflect.Message {
	m := dynamicpb.NewMessage(md)
	set := func(m protoreflect.Message, name protoreflect.Name, s string, n int64) {
		fd := m.Descriptor().Fields().ByName(name)
		if fd == nil {
			return
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(s))
		case protoreflect.BytesKind:
			m.Set(fd, protoreflect.ValueOfBytes([]byte(s)))
		case protoreflect.Int64Kind:
			m.Set(fd, protoreflect.ValueOfInt64(n))
		case protoreflect.Uint64Kind:
			m.Set(fd, protoreflect.ValueOfUint64(uint64(n)))
		case protoreflect.DoubleKind:
			m.Set(fd, protoreflect.ValueOfFloat64(float64(n)))
		}
	}
	for _, name := range []protoreflect.Name{"from_account_id", "account_id"} {
		set(m, name, w.from, 0)
	}
	set(m, "to_account_id", w.to, 0)
	set(m, "idempotency_key", w.key, 0)
	for _, name := range []protoreflect.Name{"reference", "memo"} {
		set(m, name, w.text, 0)
	}
	if w.amount != nil {
		a := m.Mutable(md.Fields().ByName("amount")).Message()
		set(a, "currency_code", w.amount.GetCurrencyCode(), 0)
		set(a, "minor_units", "", w.amount.GetMinorUnits())
	}
	return m
}

func celRuleOf(id, expression string) *validate.Rule {
	return &validate.Rule{Id: proto.String(id), Expression: proto.String(expression)}
}

func withString(rules *validate.FieldRules, ext protoreflect.ExtensionType, value any) {
	sr := &validate.StringRules{}
	proto.SetExtension(sr, ext, value)
	rules.Type = &validate.FieldRules_String_{String_: sr}
}

// TestNativeGuards edits the rules of the write requests and of their Money, one at a
// time: an edit the Go does not implement exactly leaves the request to protovalidate;
// an edit the planner still takes (a rule removed, another native rule) must leave a
// plan under which native accepts nothing protovalidate refuses, over the write corpus.
func TestNativeGuards(t *testing.T) {
	transfer := (&accountsv1.TransferRequest{}).ProtoReflect().Descriptor()
	payment := (&paymentsv1.CreatePaymentRequest{}).ProtoReflect().Descriptor()
	cases := []struct {
		name    string
		md      protoreflect.MessageDescriptor
		edit    func(*ruleSet)
		reshape func(msg, money *descriptorpb.DescriptorProto)
		planned bool
	}{
		{name: "unedited Transfer", md: transfer, planned: true},
		{name: "unedited CreatePayment", md: payment, planned: true},

		// The message rule bank.self_transfer.
		{name: "self_transfer expression", md: transfer, edit: func(r *ruleSet) {
			r.msg.Cel[0].Expression = proto.String("this.from_account_id != this.to_account_id")
		}},
		{name: "self_transfer id", md: transfer, edit: func(r *ruleSet) { r.msg.Cel[0].Id = proto.String("bank.self_transfer2") }},
		{name: "another message rule", md: payment, edit: func(r *ruleSet) {
			r.msg.Cel = append(r.msg.Cel, celRuleOf("no_k", "this.idempotency_key != 'k'"))
		}},
		{name: "message cel_expression", md: transfer, edit: func(r *ruleSet) { r.msg.CelExpression = []string{"this.idempotency_key != 'k'"} }},
		{name: "message oneof rule", md: transfer, edit: func(r *ruleSet) {
			r.msg.Oneof = []*validate.MessageOneofRule{{Fields: []string{"reference", "void"}}}
		}},
		{name: "self_transfer on fields of another name", md: transfer, reshape: func(msg, _ *descriptorpb.DescriptorProto) {
			msg.Field[0].Name, msg.Field[0].JsonName = proto.String("source_account_id"), proto.String("sourceAccountId")
		}},
		{name: "self_transfer removed", md: transfer, planned: true, edit: func(r *ruleSet) { r.msg.Cel = nil }},

		// The rules of the amount field.
		{name: "amount.positive expression", md: transfer, edit: func(r *ruleSet) {
			r.fields["amount"].Cel[0].Expression = proto.String("this.minor_units >= 0")
		}},
		{name: "amount.max expression", md: payment, edit: func(r *ruleSet) {
			r.fields["amount"].Cel[1].Expression = proto.String("this.minor_units <= 100000000000000000")
		}},
		{name: "amount.max id", md: payment, edit: func(r *ruleSet) { r.fields["amount"].Cel[1].Id = proto.String("bank.amount.maximum") }},
		{name: "another amount rule", md: transfer, edit: func(r *ruleSet) {
			r.fields["amount"].Cel = append(r.fields["amount"].Cel, celRuleOf("eur", "this.currency_code == 'EUR'"))
		}},
		{name: "amount cel_expression", md: transfer, edit: func(r *ruleSet) { r.fields["amount"].CelExpression = []string{"this.minor_units > 0"} }},
		{name: "amount ignored if zero", md: payment, edit: func(r *ruleSet) { r.fields["amount"].Ignore = validate.Ignore_IGNORE_IF_ZERO_VALUE.Enum() }},
		{name: "amount without rules", md: transfer, edit: func(r *ruleSet) { delete(r.fields, "amount") }},
		{name: "amount.positive removed", md: transfer, planned: true, edit: func(r *ruleSet) { r.fields["amount"].Cel = r.fields["amount"].Cel[1:] }},
		{name: "amount not required", md: payment, planned: true, edit: func(r *ruleSet) { r.fields["amount"].Required = nil }},

		// Money's own rules, which protovalidate applies to a set amount.
		{name: "currency_code with one more rule", md: transfer, edit: func(r *ruleSet) { r.moneyFields["currency_code"].GetString().MinLen = proto.Uint64(3) }},
		{name: "currency_code required only", md: payment, edit: func(r *ruleSet) { r.moneyFields["currency_code"].Type = nil }},
		{name: "currency_code with another predefined rule", md: transfer, edit: func(r *ruleSet) {
			withString(r.moneyFields["currency_code"], typev1.E_PageToken, true)
		}},
		{name: "currency_code with a CEL rule", md: transfer, edit: func(r *ruleSet) {
			r.moneyFields["currency_code"].Cel = []*validate.Rule{celRuleOf("eur", "this == 'EUR'")}
		}},
		{name: "a message rule on Money", md: payment, edit: func(r *ruleSet) { r.money.Cel = []*validate.Rule{celRuleOf("pos", "this.minor_units > 0")} }},
		{name: "a rule on minor_units", md: transfer, edit: func(r *ruleSet) {
			r.moneyFields["minor_units"] = &validate.FieldRules{Type: &validate.FieldRules_Int64{Int64: &validate.Int64Rules{LessThan: &validate.Int64Rules_Lt{Lt: 100}}}}
		}},
		{name: "minor_units unsigned", md: transfer, reshape: func(_, money *descriptorpb.DescriptorProto) {
			money.Field[1].Type = descriptorpb.FieldDescriptorProto_TYPE_UINT64.Enum()
		}},
		{name: "minor_units floating point", md: payment, reshape: func(_, money *descriptorpb.DescriptorProto) {
			money.Field[1].Type = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE.Enum()
		}},
		{name: "Money with a repeated field", md: transfer, reshape: func(_, money *descriptorpb.DescriptorProto) {
			money.Field = append(money.Field, &descriptorpb.FieldDescriptorProto{
				Name: proto.String("notes"), JsonName: proto.String("notes"), Number: proto.Int32(3),
				Label: descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
			})
		}},
		{name: "currency_code not required", md: transfer, planned: true, edit: func(r *ruleSet) { r.moneyFields["currency_code"].Required = nil }},
		{name: "currency_code with another native rule", md: payment, planned: true, edit: func(r *ruleSet) {
			withString(r.moneyFields["currency_code"], typev1.E_Text, uint32(textBytes))
		}},

		// The predefined rules of the string fields, and their parameters.
		{name: "reference of 255 bytes", md: transfer, edit: func(r *ruleSet) { withString(r.fields["reference"], typev1.E_Text, uint32(textBytes-1)) }},
		{name: "reference of 256 characters", md: transfer, edit: func(r *ruleSet) { withString(r.fields["reference"], typev1.E_TextChars, uint32(textBytes)) }},
		{name: "memo of 199 characters", md: payment, edit: func(r *ruleSet) { withString(r.fields["memo"], typev1.E_TextChars, uint32(textChars-1)) }},
		{name: "memo of 200 bytes", md: payment, edit: func(r *ruleSet) { withString(r.fields["memo"], typev1.E_Text, uint32(textChars)) }},
		{name: "memo with one more rule", md: payment, edit: func(r *ruleSet) { r.fields["memo"].GetString().MaxLen = proto.Uint64(100) }},
		{name: "idempotency_key with one more rule", md: payment, edit: func(r *ruleSet) { r.fields["idempotency_key"].GetString().MaxLen = proto.Uint64(64) }},
		{name: "idempotency_key with another rule", md: transfer, edit: func(r *ruleSet) {
			withString(r.fields["idempotency_key"], typev1.E_PageToken, true)
		}},
		{name: "idempotency_key rule false", md: transfer, edit: func(r *ruleSet) {
			withString(r.fields["idempotency_key"], typev1.E_IdempotencyKey, false)
		}},
		{name: "from_account_id with a CEL rule", md: transfer, edit: func(r *ruleSet) {
			r.fields["from_account_id"].Cel = []*validate.Rule{celRuleOf("x", "this != ''")}
		}},
		{name: "from_account_id bytes", md: payment, reshape: func(msg, _ *descriptorpb.DescriptorProto) {
			msg.Field[0].Type = descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum()
		}},
		{name: "reference without rules", md: transfer, planned: true, edit: func(r *ruleSet) { delete(r.fields, "reference") }},
		{name: "idempotency_key not required", md: payment, planned: true, edit: func(r *ruleSet) { r.fields["idempotency_key"].Required = nil }},
	}
	corpus := writeCorpus()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			md := edited(t, tc.md, tc.edit, tc.reshape)
			c := planNative([]protoreflect.MessageDescriptor{md})[md.FullName()]
			if (c != nil) != tc.planned {
				t.Fatalf("planned: %v, want %v", c != nil, tc.planned)
			}
			if c == nil {
				return
			}
			pv, err := protovalidate.New(protovalidate.WithMessageDescriptors(md))
			if err != nil {
				t.Fatal(err)
			}
			accepted := 0
			for _, w := range corpus {
				m := dynamicWrite(md, w)
				if !c.accepts(m) {
					continue
				}
				accepted++
				if err := pv.Validate(m.Interface()); err != nil {
					t.Fatalf("BYPASS %+v (amount %v): native accepts, protovalidate says %v", w, w.amount, err)
				}
			}
			if accepted == 0 {
				t.Fatal("native accepts no write")
			}
		})
	}
}

// TestNativeGuardsPredefined: a write request is planned only while every predefined
// rule it uses is usable (its expression in rules.proto the one its Go implements).
func TestNativeGuardsPredefined(t *testing.T) {
	transfer := (&accountsv1.TransferRequest{}).ProtoReflect().Descriptor()
	payment := (&paymentsv1.CreatePaymentRequest{}).ProtoReflect().Descriptor()
	uses := map[string][]protoreflect.MessageDescriptor{
		"bank.account_id": {transfer, payment}, "bank.currency_code": {transfer, payment},
		"bank.idempotency_key": {transfer, payment}, "bank.text": {transfer}, "bank.text_chars": {payment},
	}
	for id, mds := range uses {
		p := &planner{plans: make(map[protoreflect.MessageDescriptor]*nativeCheck)}
		for _, r := range nativeRules {
			if r.id != id {
				p.rules = append(p.rules, r)
			}
		}
		for _, md := range mds {
			if p.message(md) != nil {
				t.Errorf("%s planned without %s", md.FullName(), id)
			}
		}
	}
}
