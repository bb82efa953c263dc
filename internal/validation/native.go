package validation

import (
	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/ledger"
)

// The hot read requests (GetAccount, GetPayment) carry one id whose rules are `required`
// and one of the bank's predefined rules (rules.proto), a CEL program around a regular
// expression. protovalidate evaluates that in 1.3 µs on a warm benchmark and 4.6 µs per
// call in a profile of the read loads, about half of what the GetAccount chain costs
// beyond WhoAmI's (docs/benchmarks.md). The same rule is a loop over 30 bytes in Go.
//
// The native path only ever accepts: a message it does not accept goes to protovalidate,
// which makes the refusal, so violations, rule ids and messages are protovalidate's. It
// is planned at startup from the descriptors themselves, never from a list of messages:
// a message is accepted natively only when every field of it is a singular scalar, each
// field with rules has exactly `required` and one native rule, and the message and its
// oneofs have no rules; and a native rule is used only while its CEL expression in
// rules.proto is the one its Go function implements. Rules are read as protovalidate reads
// them (its Resolve functions, which also decode rules left as unknown option bytes). Any
// other rule, field or edit of rules.proto leaves the message to protovalidate alone.
// TestNativeMatchesProtovalidate checks that both answer alike for every id it generates;
// native_attack_test.go holds a fresh attacker's tries (a proto2 default, rules in unknown
// option bytes, a foreign descriptor of the same name).

// nativeRule is a predefined rule of rules.proto implemented in Go.
type nativeRule struct {
	ext        protoreflect.ExtensionType // the rule's extension of buf.validate.StringRules
	id         string                     // its rule id
	expression string                     // the CEL expression accept implements
	accept     func(string) bool
}

var nativeRules = []nativeRule{
	{
		ext: typev1.E_AccountId, id: "bank.account_id",
		expression: "!rule || this.matches('^acc_[0-7][0-9a-hjkmnp-tv-z]{25}$')",
		accept:     isAccountID,
	},
	{
		ext: typev1.E_PaymentId, id: "bank.payment_id",
		expression: "!rule || this.matches('^pay_[A-Z2-7]{26}$')",
		accept:     isPaymentID,
	},
}

// isAccountID is ^acc_[0-7][0-9a-hjkmnp-tv-z]{25}$: the ledger's own parser of account
// ids, which the rule writes as a regular expression.
func isAccountID(s string) bool {
	_, err := ledger.ParseAccountID(s)
	return err == nil
}

// isPaymentID is ^pay_[A-Z2-7]{26}$ (the payments package makes these ids and parses
// none).
func isPaymentID(s string) bool {
	if len(s) != 30 || s[:4] != "pay_" {
		return false
	}
	for i := 4; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// usable reports whether r's expression is still the one rules.proto declares for it.
func (r nativeRule) usable() bool {
	pre, err := protovalidate.ResolvePredefinedRules(r.ext.TypeDescriptor())
	if err != nil {
		return false
	}
	cel := pre.GetCel()
	return len(cel) == 1 && cel[0].GetId() == r.id && cel[0].GetExpression() == r.expression
}

// shape is exactly `required` and r, the only field rules the native path accepts.
func (r nativeRule) shape() *validate.FieldRules {
	sr := &validate.StringRules{}
	proto.SetExtension(sr, r.ext, true)
	return &validate.FieldRules{Required: proto.Bool(true), Type: &validate.FieldRules_String_{String_: sr}}
}

// nativeCheck is the planned native acceptance of one message type.
type nativeCheck struct {
	md     protoreflect.MessageDescriptor // the descriptor planned: a message of another one is not accepted
	fields []nativeField
}

type nativeField struct {
	fd     protoreflect.FieldDescriptor
	accept func(string) bool
}

// accepts reports whether m satisfies its rules; false means "ask protovalidate". Each
// field must be set (every native shape is `required`: a proto2 or editions default is
// not a value the caller sent) and its value accepted.
// A nil check (a message not planned) accepts nothing.
func (c *nativeCheck) accepts(m protoreflect.Message) bool {
	if c == nil || m.Descriptor() != c.md {
		return false
	}
	for _, f := range c.fields {
		if !m.Has(f.fd) || !f.accept(m.Get(f.fd).String()) {
			return false
		}
	}
	return true
}

// planNative returns the native checks of the messages in mds that qualify (see above).
func planNative(mds []protoreflect.MessageDescriptor) map[protoreflect.FullName]*nativeCheck {
	type shape struct {
		rules  *validate.FieldRules
		accept func(string) bool
	}
	var shapes []shape
	for _, r := range nativeRules {
		if r.usable() {
			shapes = append(shapes, shape{r.shape(), r.accept})
		}
	}
	out := make(map[protoreflect.FullName]*nativeCheck)
	for _, md := range mds {
		if c, ok := planMessage(md, func(rules *validate.FieldRules) func(string) bool {
			for _, s := range shapes {
				if proto.Equal(rules, s.rules) {
					return s.accept
				}
			}
			return nil
		}); ok {
			out[md.FullName()] = c // with no field to check, protovalidate has no rule for md either
		}
	}
	return out
}

// planMessage plans md's native check; native maps a field's rules to the function that
// decides them, or nil when they are not a native shape.
func planMessage(md protoreflect.MessageDescriptor, native func(*validate.FieldRules) func(string) bool) (*nativeCheck, bool) {
	if mr, err := protovalidate.ResolveMessageRules(md); err != nil || proto.Size(mr) > 0 {
		return nil, false
	}
	for i := 0; i < md.Oneofs().Len(); i++ {
		if or, err := protovalidate.ResolveOneofRules(md.Oneofs().Get(i)); err != nil || proto.Size(or) > 0 {
			return nil, false
		}
	}
	c := &nativeCheck{md: md}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if fd.Cardinality() == protoreflect.Repeated || fd.Message() != nil || fd.IsExtension() {
			return nil, false // protovalidate would look inside, or rules of its own may apply
		}
		rules, err := fieldRules(fd)
		switch {
		case err != nil:
			return nil, false
		case rules == nil:
			continue
		}
		accept := native(rules)
		if accept == nil || fd.Kind() != protoreflect.StringKind {
			return nil, false
		}
		c.fields = append(c.fields, nativeField{fd: fd, accept: accept})
	}
	return c, true
}

// fieldRules returns fd's rules as protovalidate reads them, nil when it has none.
func fieldRules(fd protoreflect.FieldDescriptor) (*validate.FieldRules, error) {
	rules, err := protovalidate.ResolveFieldRules(fd)
	if err != nil || proto.Size(rules) == 0 {
		return nil, err
	}
	return rules, nil
}
