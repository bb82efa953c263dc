package validation

import (
	"unicode/utf8"

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
// beyond WhoAmI's (docs/benchmarks.md). The same rule is a loop over 30 bytes in Go. The
// requests that move money (TransferRequest, CreatePaymentRequest) cost about 8 µs each
// in protovalidate and under 1 µs here (BenchmarkCheck): their rules are a few loops and
// comparisons in Go.
//
// The native path only ever accepts: a message it does not accept goes to protovalidate,
// which makes the refusal, so violations, rule ids and messages are protovalidate's. It
// is planned at startup from the descriptors themselves, never from a list of messages,
// reading the rules as protovalidate reads them (its Resolve functions, which also decode
// rules left as unknown option bytes). A message is accepted natively only when
//   - its message rules are CEL rules of nativeCELs and its oneofs have no rules;
//   - every field is singular, and each field with rules has `required` or not and either,
//     on a string, exactly one predefined rule of nativeRules with the value its Go
//     implements (bank.text = 256, not another length), or, on a message field, CEL rules
//     of nativeCELs, the field's message being native in turn: protovalidate applies a
//     set message field's own rules (Money's currency_code). A message field without
//     rules, a repeated field, a message that contains itself, any other rule leave the
//     message to protovalidate;
//   - a predefined rule is used only while its CEL expression in rules.proto is the one
//     its Go implements, and a CEL rule only while its id and expression are, letter for
//     letter, those of nativeCELs and the fields it reads have the names and kinds the Go
//     reads.
// So an edit of the rules leaves the message to protovalidate, or, when it removes a rule,
// to a plan without that rule. The Go may be stricter than a rule, never laxer: it refuses
// text that is not valid UTF-8, which protovalidate reads as U+FFFD and accepts (the gRPC
// codec refuses it before), and it checks a field that is not required even when unset,
// where protovalidate skips a field with presence. TestNativeMatchesProtovalidate and
// TestNativeWritesMatchProtovalidate decide generated requests both ways; TestNativeGuards
// edits the rules of the write requests; native_attack_test.go holds a fresh attacker's
// tries (a proto2 default, rules in unknown option bytes, a foreign descriptor of the
// same name).

// nativeRule is a predefined string rule of rules.proto implemented in Go, with the value
// a field gives it.
type nativeRule struct {
	ext        protoreflect.ExtensionType // the rule's extension of buf.validate.StringRules
	value      any                        // the value accept implements: true, or the rule's parameter
	id         string                     // its rule id
	expression string                     // the CEL expression accept implements
	accept     func(string) bool
}

// The parameters of the text rules the native path implements, those of the bank's
// requests (TransferRequest.reference, CreatePaymentRequest.memo).
const (
	textBytes = 256
	textChars = 200
)

// textClass is the class of the text rules' regular expression: control characters and
// bidirectional controls.
const textClass = `[\p{Cc}\x{202A}-\x{202E}\x{2066}-\x{2069}]`

var nativeRules = []nativeRule{
	{
		ext: typev1.E_AccountId, value: true, id: "bank.account_id",
		expression: "!rule || this.matches('^acc_[0-7][0-9a-hjkmnp-tv-z]{25}$')",
		accept:     isAccountID,
	},
	{
		ext: typev1.E_PaymentId, value: true, id: "bank.payment_id",
		expression: "!rule || this.matches('^pay_[A-Z2-7]{26}$')",
		accept:     isPaymentID,
	},
	{
		ext: typev1.E_CurrencyCode, value: true, id: "bank.currency_code",
		expression: "!rule || this.matches('^[A-Z]{3}$')",
		accept:     isCurrencyCode,
	},
	{
		ext: typev1.E_IdempotencyKey, value: true, id: "bank.idempotency_key",
		expression: "!rule || this.matches('^[!-~]{1,128}$')",
		accept:     isIdempotencyKey,
	},
	{
		ext: typev1.E_Text, value: uint32(textBytes), id: "bank.text",
		expression: "uint(bytes(this).size()) > rule ? 'must be at most %s bytes'.format([rule]) : this.matches(r'" + textClass + "') ? 'must not hold control or bidirectional control characters' : ''",
		accept:     func(s string) bool { return len(s) <= textBytes && isText(s) },
	},
	{
		ext: typev1.E_TextChars, value: uint32(textChars), id: "bank.text_chars",
		expression: "uint(size(this)) > rule ? 'must be at most %s characters'.format([rule]) : this.matches(r'" + textClass + "') ? 'must not hold control or bidirectional control characters' : ''",
		// CEL's size() counts code points, as RuneCountInString does in valid UTF-8; a
		// code point is at most 4 bytes, so longer text is too long without a look.
		accept: func(s string) bool {
			return len(s) <= utf8.UTFMax*textChars && isText(s) && utf8.RuneCountInString(s) <= textChars
		},
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

// isCurrencyCode is ^[A-Z]{3}$.
func isCurrencyCode(s string) bool {
	return len(s) == 3 && isUpper(s[0]) && isUpper(s[1]) && isUpper(s[2])
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// isIdempotencyKey is ^[!-~]{1,128}$: ASCII, so a byte is a character.
func isIdempotencyKey(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '!' || c > '~' {
			return false
		}
	}
	return true
}

// isText reports whether s is valid UTF-8 without a character of textClass. CEL reads
// invalid UTF-8 as U+FFFD and its rule accepts it; the native path leaves such text to
// protovalidate rather than repeat how CEL counts and matches it.
func isText(s string) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			return false
		}
		i += n
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

// rules is r with its value, the only string rules accept implements.
func (r nativeRule) rules() *validate.StringRules {
	sr := &validate.StringRules{}
	proto.SetExtension(sr, r.ext, r.value)
	return sr
}

// nativeCEL is a CEL rule of the bank's .proto files, on a message or on a field of
// message type, implemented in Go.
type nativeCEL struct {
	id         string
	expression string
	// bind returns the rule over messages of md (the expression's `this`), nil when md
	// lacks a field the expression reads, of the kind the Go reads.
	bind func(md protoreflect.MessageDescriptor) func(protoreflect.Message) bool
}

var nativeCELs = []nativeCEL{
	{
		id: "bank.self_transfer", expression: "this.from_account_id == '' || this.from_account_id != this.to_account_id",
		bind: func(md protoreflect.MessageDescriptor) func(protoreflect.Message) bool {
			from, to := singular(md, "from_account_id", protoreflect.StringKind), singular(md, "to_account_id", protoreflect.StringKind)
			if from == nil || to == nil {
				return nil
			}
			return func(m protoreflect.Message) bool { // CEL compares strings byte for byte, as Go does
				f := m.Get(from).String()
				return f == "" || f != m.Get(to).String()
			}
		},
	},
	{
		id: "bank.amount.positive", expression: "this.minor_units > 0",
		bind: minorUnits(func(n int64) bool { return n > 0 }),
	},
	{
		id: "bank.amount.max", expression: "this.minor_units <= 1000000000000000000",
		bind: minorUnits(func(n int64) bool { return n <= 1_000_000_000_000_000_000 }),
	},
}

// minorUnits binds accept to the int64 field minor_units of a message (Money).
func minorUnits(accept func(int64) bool) func(protoreflect.MessageDescriptor) func(protoreflect.Message) bool {
	return func(md protoreflect.MessageDescriptor) func(protoreflect.Message) bool {
		fd := singular(md, "minor_units", protoreflect.Int64Kind)
		if fd == nil {
			return nil
		}
		return func(m protoreflect.Message) bool { return accept(m.Get(fd).Int()) }
	}
}

// singular returns md's field name when it is a singular field of kind k, else nil.
func singular(md protoreflect.MessageDescriptor, name protoreflect.Name, k protoreflect.Kind) protoreflect.FieldDescriptor {
	fd := md.Fields().ByName(name)
	if fd == nil || fd.Kind() != k || fd.Cardinality() == protoreflect.Repeated {
		return nil
	}
	return fd
}

// nativeCheck is the planned native acceptance of one message type.
type nativeCheck struct {
	md     protoreflect.MessageDescriptor // the descriptor planned: a message of another one is not accepted
	fields []nativeField
	rules  []func(protoreflect.Message) bool // the message's CEL rules
}

type nativeField struct {
	fd       protoreflect.FieldDescriptor
	required bool
	accept   func(protoreflect.Value) bool
}

// accepts reports whether m satisfies its rules; false means "ask protovalidate". A
// required field must be set (a proto2 or editions default is not a value the caller
// sent); every field's value, set or not, must be accepted.
// A nil check (a message not planned) accepts nothing.
func (c *nativeCheck) accepts(m protoreflect.Message) bool {
	if c == nil || m.Descriptor() != c.md {
		return false
	}
	for _, f := range c.fields {
		if f.required && !m.Has(f.fd) || !f.accept(m.Get(f.fd)) {
			return false
		}
	}
	for _, accept := range c.rules {
		if !accept(m) {
			return false
		}
	}
	return true
}

// planNative returns the native checks of the messages in mds that qualify (see above).
func planNative(mds []protoreflect.MessageDescriptor) map[protoreflect.FullName]*nativeCheck {
	p := &planner{plans: make(map[protoreflect.MessageDescriptor]*nativeCheck)}
	for _, r := range nativeRules {
		if r.usable() {
			p.rules = append(p.rules, r)
		}
	}
	out := make(map[protoreflect.FullName]*nativeCheck)
	for _, md := range mds {
		if c := p.message(md); c != nil {
			out[md.FullName()] = c // with no field to check, protovalidate has no rule for md either
		}
	}
	return out
}

// planner plans the native checks of messages, each once.
type planner struct {
	rules []nativeRule                                    // the predefined rules that are usable
	plans map[protoreflect.MessageDescriptor]*nativeCheck // nil: not native, or being planned
}

// message returns md's native check, nil when md is not native. A message that contains
// itself, through its fields, is not.
func (p *planner) message(md protoreflect.MessageDescriptor) *nativeCheck {
	if c, seen := p.plans[md]; seen {
		return c
	}
	p.plans[md] = nil
	c := p.plan(md)
	p.plans[md] = c
	return c
}

func (p *planner) plan(md protoreflect.MessageDescriptor) *nativeCheck {
	mr, err := protovalidate.ResolveMessageRules(md)
	if err != nil {
		return nil
	}
	c := &nativeCheck{md: md}
	if proto.Size(mr) > 0 {
		for _, rule := range mr.GetCel() {
			accept := celRule(rule, md)
			if accept == nil {
				return nil
			}
			c.rules = append(c.rules, accept)
		}
		rest := proto.CloneOf(mr)
		rest.Cel = nil
		if proto.Size(rest) > 0 {
			return nil // oneof rules, cel_expression, or a rule this version does not know
		}
	}
	for i := 0; i < md.Oneofs().Len(); i++ {
		if or, err := protovalidate.ResolveOneofRules(md.Oneofs().Get(i)); err != nil || proto.Size(or) > 0 {
			return nil
		}
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if fd.Cardinality() == protoreflect.Repeated || fd.IsExtension() {
			return nil // protovalidate would look inside, or rules of its own may apply
		}
		rules, err := fieldRules(fd)
		switch {
		case err != nil:
			return nil
		case rules == nil && fd.Message() != nil:
			return nil // protovalidate applies the rules of a set message field's own message
		case rules == nil:
			continue
		}
		f, ok := p.field(fd, rules)
		if !ok {
			return nil
		}
		c.fields = append(c.fields, f)
	}
	return c
}

// field plans fd's rules: `required` or not, and either exactly one usable predefined rule
// on a string, or CEL rules of nativeCELs on a field whose message is native itself.
func (p *planner) field(fd protoreflect.FieldDescriptor, rules *validate.FieldRules) (nativeField, bool) {
	f := nativeField{fd: fd, required: rules.GetRequired()}
	rest := proto.CloneOf(rules)
	rest.Required = nil
	switch {
	case fd.Kind() == protoreflect.StringKind:
		accept := p.stringRule(rules.GetString())
		if accept == nil {
			return f, false
		}
		f.accept = func(v protoreflect.Value) bool { return accept(v.String()) }
		rest.Type = nil
	case fd.Message() != nil:
		nested := p.message(fd.Message())
		if nested == nil {
			return f, false
		}
		var cels []func(protoreflect.Message) bool
		for _, rule := range rules.GetCel() {
			accept := celRule(rule, fd.Message())
			if accept == nil {
				return f, false
			}
			cels = append(cels, accept)
		}
		f.accept = func(v protoreflect.Value) bool {
			m := v.Message()
			if !nested.accepts(m) {
				return false
			}
			for _, accept := range cels {
				if !accept(m) {
					return false
				}
			}
			return true
		}
		rest.Cel = nil
	default:
		return f, false
	}
	return f, proto.Size(rest) == 0
}

// stringRule returns the Go of the usable predefined rule that sr is exactly, nil if none.
func (p *planner) stringRule(sr *validate.StringRules) func(string) bool {
	for _, r := range p.rules {
		if proto.Equal(sr, r.rules()) && sets(sr, r.ext) {
			return r.accept
		}
	}
	return nil
}

// sets reports whether what sr sets is the extension ext itself, and nothing unknown.
// proto.Equal matches an extension by its field number: another file may declare a
// predefined rule of that number with another expression, and protovalidate runs the
// rule the field names (docs/security.md, the seventh fresh attacker).
func sets(sr *validate.StringRules, ext protoreflect.ExtensionType) bool {
	m := sr.ProtoReflect()
	if len(m.GetUnknown()) > 0 {
		return false
	}
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		xd, isExt := fd.(protoreflect.ExtensionTypeDescriptor)
		ok = isExt && xd.Type() == ext
		return ok
	})
	return ok
}

// celRule returns the Go of rule over messages of md, nil when it is not one of nativeCELs
// (same id and expression; the message only words a refusal) or md does not fit it.
func celRule(rule *validate.Rule, md protoreflect.MessageDescriptor) func(protoreflect.Message) bool {
	for _, n := range nativeCELs {
		if rule.GetId() == n.id && rule.GetExpression() == n.expression {
			return n.bind(md)
		}
	}
	return nil
}

// fieldRules returns fd's rules as protovalidate reads them, nil when it has none.
func fieldRules(fd protoreflect.FieldDescriptor) (*validate.FieldRules, error) {
	rules, err := protovalidate.ResolveFieldRules(fd)
	if err != nil || proto.Size(rules) == 0 {
		return nil, err
	}
	return rules, nil
}
