package validation

import (
	"sort"
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/refusal"
)

// bankServices are the services whose requests the rules cover.
var bankServices = []protoreflect.ServiceDescriptor{
	accountsv1.File_bank_accounts_v1_accounts_proto.Services().ByName("AccountsService"),
	paymentsv1.File_bank_payments_v1_payments_proto.Services().ByName("PaymentsService"),
	identityv1.File_bank_identity_v1_identity_proto.Services().ByName("IdentityService"),
}

// free lists the request fields that deliberately have no rule, and why.
var free = map[protoreflect.FullName]string{
	"bank.accounts.v1.TransferRequest.void": "a flag: both values are valid",
	"bank.type.v1.Money.minor_units":        "a balance may be zero; each amount field of a request has its rules",
}

// requestMessages returns the input message of every method of the bank's services, and
// every message a field of one of them holds, each once.
func requestMessages(t *testing.T) []protoreflect.MessageDescriptor {
	t.Helper()
	seen := map[protoreflect.FullName]bool{}
	var out []protoreflect.MessageDescriptor
	var add func(m protoreflect.MessageDescriptor)
	add = func(m protoreflect.MessageDescriptor) {
		if seen[m.FullName()] {
			return
		}
		seen[m.FullName()] = true
		out = append(out, m)
		for i := 0; i < m.Fields().Len(); i++ {
			if f := m.Fields().Get(i); f.Message() != nil {
				add(f.Message())
			}
		}
	}
	for _, sd := range bankServices {
		if sd == nil {
			t.Fatal("a bank service is missing from its file")
		}
		for i := 0; i < sd.Methods().Len(); i++ {
			add(sd.Methods().Get(i).Input())
		}
	}
	return out
}

// ruleIDs returns the ids of every rule on the field: required, its CEL rules, and the
// rules (standard or predefined) of its type.
func ruleIDs(f protoreflect.FieldDescriptor) []string {
	fr, _ := proto.GetExtension(f.Options(), validate.E_Field).(*validate.FieldRules)
	if fr == nil {
		return nil
	}
	var ids []string
	if fr.GetRequired() {
		ids = append(ids, "required")
	}
	for _, r := range fr.GetCel() {
		ids = append(ids, r.GetId())
	}
	fr.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.ContainingOneof() == nil || fd.Message() == nil {
			return true
		}
		// The rules of the field's type: each one set is a standard rule or one of the
		// bank's predefined rules, whose ids are in its (buf.validate.predefined) option.
		v.Message().Range(func(rule protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			pr, _ := proto.GetExtension(rule.Options(), validate.E_Predefined).(*validate.PredefinedRules)
			for _, c := range pr.GetCel() {
				ids = append(ids, c.GetId())
			}
			if len(pr.GetCel()) == 0 {
				ids = append(ids, string(rule.FullName())) // a rule without CEL (such as in): no id to map
			}
			return true
		})
		return true
	})
	return ids
}

// TestEveryRequestFieldHasRules: every field of every request of every bank RPC (and of
// the messages they hold) has a protovalidate rule, unless free says why not; so a field
// added without thinking about its validation fails here.
func TestEveryRequestFieldHasRules(t *testing.T) {
	msgs := requestMessages(t)
	if len(msgs) < 12 {
		t.Fatalf("found %d request messages, want every request of the three services", len(msgs))
	}
	for _, m := range msgs {
		for i := 0; i < m.Fields().Len(); i++ {
			f := m.Fields().Get(i)
			if _, ok := free[f.FullName()]; ok {
				continue
			}
			if len(ruleIDs(f)) == 0 {
				t.Errorf("%s has no protovalidate rule: give it one in proto/, or list it in free with the reason", f.FullName())
			}
		}
	}
	for name := range free {
		if _, err := protoregistry.GlobalFiles.FindDescriptorByName(name); err != nil {
			t.Errorf("free lists %s, which does not exist", name)
		}
	}
}

// TestEveryRuleHasAReason: every rule of the requests, and every rule the bank's protos
// define, maps to a specific refusal reason (never the generic INVALID_ARGUMENT), and
// every entry of reasons is used.
func TestEveryRuleHasAReason(t *testing.T) {
	used := map[string]bool{}
	for _, m := range requestMessages(t) {
		mr, _ := proto.GetExtension(m.Options(), validate.E_Message).(*validate.MessageRules)
		for _, c := range mr.GetCel() {
			used[c.GetId()] = true
		}
		for i := 0; i < m.Fields().Len(); i++ {
			for _, id := range ruleIDs(m.Fields().Get(i)) {
				used[id] = true
			}
		}
	}
	// The predefined rules of bank/type/v1/rules.proto, used or not.
	protoregistry.GlobalTypes.RangeExtensions(func(xt protoreflect.ExtensionType) bool {
		xd := xt.TypeDescriptor()
		if !strings.HasPrefix(string(xd.FullName()), "bank.") {
			return true
		}
		pr, _ := proto.GetExtension(xd.Options(), validate.E_Predefined).(*validate.PredefinedRules)
		for _, c := range pr.GetCel() {
			used[c.GetId()] = true
		}
		return true
	})
	var ids []string
	for id := range used {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r, ok := reasons[id]
		if !ok || r.reason == "" || r.reason == refusal.InvalidArgument {
			t.Errorf("rule %q has no specific reason in reasons", id)
		}
	}
	for id := range reasons {
		if !used[id] {
			t.Errorf("reasons maps %q, which no rule of the bank's protos has", id)
		}
	}
	if len(ids) < 14 {
		t.Errorf("found the rule ids %v: fewer than the bank's protos have; are the rules linked?", ids)
	}
}

// TestAnnotatedMessagesCompiledUpFront: New compiles every request message that has
// rules (so that no request pays for compiling them) and none of protovalidate's own. A
// request without rules (WhoAmIRequest, whose file does not import protovalidate) is
// compiled on its first call, to a check that does nothing.
func TestAnnotatedMessagesCompiledUpFront(t *testing.T) {
	got := map[protoreflect.FullName]bool{}
	for _, m := range annotated(protoregistry.GlobalFiles) {
		got[m.FullName()] = true
	}
	for _, m := range requestMessages(t) {
		if got[m.FullName()] {
			continue
		}
		for i := 0; i < m.Fields().Len(); i++ {
			if ids := ruleIDs(m.Fields().Get(i)); len(ids) > 0 {
				t.Errorf("%s has rules %v but is not compiled up front", m.FullName(), ids)
			}
		}
	}
	if !got["bank.accounts.v1.GetAccountRequest"] || !got["bank.payments.v1.CreatePaymentRequest"] {
		t.Errorf("the requests with rules are not compiled up front: %v", got)
	}
	for name := range got {
		if strings.HasPrefix(string(name), "buf.validate.") || strings.HasPrefix(string(name), "google.") {
			t.Errorf("%s is compiled up front, but has no bank rules", name)
		}
	}
}
