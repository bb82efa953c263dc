package validation

import (
	"strings"
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
)

const validID = "acc_0123456789abcdefghjkmnpqrs" // 30 bytes, matches bank.account_id

// attackFile builds a one-message file importing validate.proto and rules.proto.
func attackFile(t *testing.T, syntax string, msg *descriptorpb.DescriptorProto) protoreflect.MessageDescriptor {
	t.Helper()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("attack/" + msg.GetName() + ".proto"),
		Package:     proto.String("attack"),
		Dependency:  []string{"buf/validate/validate.proto", "bank/type/v1/rules.proto"},
		MessageType: []*descriptorpb.DescriptorProto{msg},
	}
	switch syntax {
	case "editions":
		fdp.Syntax = proto.String("editions")
		fdp.Edition = descriptorpb.Edition_EDITION_2023.Enum()
	default:
		fdp.Syntax = proto.String(syntax)
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().Get(0)
}

func nativeOpts() *descriptorpb.FieldOptions {
	o := &descriptorpb.FieldOptions{}
	proto.SetExtension(o, validate.E_Field, nativeRules[0].shape())
	return o
}

func strField(name string, n int32, opts *descriptorpb.FieldOptions) *descriptorpb.FieldDescriptorProto {
	return &descriptorpb.FieldDescriptorProto{
		Name: proto.String(name), Number: proto.Int32(n), JsonName: proto.String(name),
		Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
		Type:  descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Options: opts,
	}
}

// compareOn fails when the native plan of md accepts a message protovalidate rejects.
func compareOn(t *testing.T, md protoreflect.MessageDescriptor, msgs ...protoreflect.Message) {
	t.Helper()
	pv, err := protovalidate.New(protovalidate.WithMessageDescriptors(md))
	if err != nil {
		t.Fatalf("protovalidate: %v", err)
	}
	c, planned := planNative([]protoreflect.MessageDescriptor{md})[md.FullName()]
	fields := 0
	if planned {
		fields = len(c.fields)
	}
	t.Logf("%s planned natively: %v (%d checked fields)", md.FullName(), planned, fields)
	for _, m := range msgs {
		if !planned || !c.accepts(m) {
			continue
		}
		if err := pv.Validate(m.Interface()); err != nil {
			t.Errorf("BYPASS: native accepts %v but protovalidate says: %v", m, err)
		}
	}
}

// A proto2/editions string field with a valid [default]: Get returns the default, `required` checks Has.
func TestAttackDefaultValue(t *testing.T) {
	for _, syntax := range []string{"proto2", "editions"} {
		t.Run(syntax, func(t *testing.T) {
			f := strField("id", 1, nativeOpts())
			f.DefaultValue = proto.String(validID)
			md := attackFile(t, syntax, &descriptorpb.DescriptorProto{Name: proto.String("Default" + strings.ToUpper(syntax[:1])), Field: []*descriptorpb.FieldDescriptorProto{f}})
			compareOn(t, md, dynamicpb.NewMessage(md)) // the field is unset
		})
	}
}

// Rules present only as unknown bytes of the options: protovalidate re-parses them (resolve.go), the planner does not.
func TestAttackRulesInUnknownOptions(t *testing.T) {
	b, err := proto.Marshal(nativeOpts())
	if err != nil {
		t.Fatal(err)
	}
	o := &descriptorpb.FieldOptions{}
	o.ProtoReflect().SetUnknown(b)
	md := attackFile(t, "proto3", &descriptorpb.DescriptorProto{Name: proto.String("Unknown"), Field: []*descriptorpb.FieldDescriptorProto{strField("id", 1, o)}})
	compareOn(t, md, dynamicpb.NewMessage(md))
}

// Shapes that should hold: proto3 optional, oneof member, proto2 without default, extra rule-less fields.
func TestAttackShapesThatHold(t *testing.T) {
	vals := []string{"", validID, strings.ToUpper(validID), validID + "\n", "\x00" + validID[1:]}
	t.Run("proto3optional", func(t *testing.T) {
		f := strField("id", 1, nativeOpts())
		f.Proto3Optional = proto.Bool(true)
		f.OneofIndex = proto.Int32(0)
		md := attackFile(t, "proto3", &descriptorpb.DescriptorProto{Name: proto.String("Opt"), Field: []*descriptorpb.FieldDescriptorProto{f},
			OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("_id")}}})
		compareOn(t, md, msgsWith(md, vals)...)
	})
	t.Run("oneof", func(t *testing.T) {
		a, b := strField("a", 1, nativeOpts()), strField("b", 2, nil)
		a.OneofIndex, b.OneofIndex = proto.Int32(0), proto.Int32(0)
		md := attackFile(t, "proto3", &descriptorpb.DescriptorProto{Name: proto.String("One"), Field: []*descriptorpb.FieldDescriptorProto{a, b},
			OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("o")}}})
		ms := msgsWith(md, vals)
		m := dynamicpb.NewMessage(md)
		m.Set(md.Fields().Get(1), protoreflect.ValueOfString("x"))
		compareOn(t, md, append(ms, m)...)
	})
	t.Run("proto2nodefault", func(t *testing.T) {
		md := attackFile(t, "proto2", &descriptorpb.DescriptorProto{Name: proto.String("P2"), Field: []*descriptorpb.FieldDescriptorProto{strField("id", 1, nativeOpts())}})
		compareOn(t, md, msgsWith(md, vals)...)
	})
	t.Run("ignoreAlways", func(t *testing.T) {
		o := &descriptorpb.FieldOptions{}
		r := nativeRules[0].shape()
		r.Ignore = validate.Ignore_IGNORE_ALWAYS.Enum()
		proto.SetExtension(o, validate.E_Field, r)
		md := attackFile(t, "proto3", &descriptorpb.DescriptorProto{Name: proto.String("Ign"), Field: []*descriptorpb.FieldDescriptorProto{strField("id", 1, o)}})
		compareOn(t, md, msgsWith(md, vals)...)
	})
}

func msgsWith(md protoreflect.MessageDescriptor, vals []string) []protoreflect.Message {
	out := []protoreflect.Message{dynamicpb.NewMessage(md)}
	for _, v := range vals {
		m := dynamicpb.NewMessage(md)
		m.Set(md.Fields().Get(0), protoreflect.ValueOfString(v))
		out = append(out, m)
	}
	return out
}

// Tricky ids on the real GetAccount/GetPayment requests, through Validator.Check.
func TestAttackTrickyIDs(t *testing.T) {
	v, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	pv, _ := compiled()
	base := []string{validID, "pay_ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
	var ids []string
	for _, b := range base {
		ids = append(ids, b, b+"\n", "\n"+b[1:], b[:29]+"\x00", b[:29]+"\xff", b[:28]+"\u00e9", b[:27]+"\u212a",
			strings.ToUpper(b), strings.ToLower(b), b[:29], b+"a", b[:4]+"８"+b[7:], b[:29]+"\u017f")
	}
	for _, id := range ids {
		for _, m := range []proto.Message{&accountsv1.GetAccountRequest{Id: id}, &paymentsv1.GetPaymentRequest{Id: id}} {
			c, ok := v.native[m.ProtoReflect().Descriptor().FullName()]
			if ok && c.accepts(m.ProtoReflect()) {
				if err := pv.Validate(m); err != nil {
					t.Errorf("BYPASS %T %q: %v", m, id, err)
				}
			}
		}
	}
}

// Every natively planned message of the binary: zero value and every string field set to a valid id.
func TestAttackEveryNativeMessage(t *testing.T) {
	pv, _ := compiled()
	for name, c := range natives() {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, fill := range []string{"", validID, "pay_ABCDEFGHIJKLMNOPQRSTUVWXYZ", "x"} {
			m := mt.New()
			fs := m.Descriptor().Fields()
			for i := 0; i < fs.Len(); i++ {
				fd := fs.Get(i)
				switch fd.Kind() {
				case protoreflect.StringKind:
					m.Set(fd, protoreflect.ValueOfString(fill))
				case protoreflect.Int64Kind, protoreflect.Int32Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind:
					if fill != "" {
						m.Set(fd, m.Get(fd)) // zero; protovalidate cares only through rules
					}
				}
			}
			if c.accepts(m) {
				if err := pv.Validate(m.Interface()); err != nil {
					t.Errorf("BYPASS %s fill %q: %v", name, fill, err)
				}
			}
		}
	}
	t.Logf("%d messages planned natively", len(natives()))
}

// A message from another descriptor with the name of a native one: Check must not panic.
func TestAttackSameNameOtherDescriptor(t *testing.T) {
	v, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name: proto.String("attack/samename.proto"), Package: proto.String("bank.accounts.v1"), Syntax: proto.String("proto3"),
		Dependency:  []string{"buf/validate/validate.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("GetAccountRequest"), Field: []*descriptorpb.FieldDescriptorProto{strField("id", 1, nil)}}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	m := dynamicpb.NewMessage(fd.Messages().Get(0))
	m.Set(fd.Messages().Get(0).Fields().Get(0), protoreflect.ValueOfString("nope"))
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Check panicked on a foreign %s: %v", fd.Messages().Get(0).FullName(), r)
		}
	}()
	err = v.Check(t.Context(), m)
	t.Logf("Check on foreign descriptor: %v", err)
}

// proto2 extension with rules set on a natively planned message: protovalidate (v1.4.0) walks Fields() only.
func TestAttackExtensionWithRules(t *testing.T) {
	msg := &descriptorpb.DescriptorProto{Name: proto.String("Ext"), Field: []*descriptorpb.FieldDescriptorProto{strField("id", 1, nativeOpts())},
		ExtensionRange: []*descriptorpb.DescriptorProto_ExtensionRange{{Start: proto.Int32(100), End: proto.Int32(200)}}}
	fdp := &descriptorpb.FileDescriptorProto{
		Name: proto.String("attack/ext.proto"), Package: proto.String("attack"), Syntax: proto.String("proto2"),
		Dependency: []string{"buf/validate/validate.proto", "bank/type/v1/rules.proto"}, MessageType: []*descriptorpb.DescriptorProto{msg},
	}
	xo := &descriptorpb.FieldOptions{}
	proto.SetExtension(xo, validate.E_Field, &validate.FieldRules{Required: proto.Bool(true)})
	x := strField("x", 100, xo)
	x.Extendee = proto.String(".attack.Ext")
	fdp.Extension = []*descriptorpb.FieldDescriptorProto{x}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	md := fd.Messages().Get(0)
	m := dynamicpb.NewMessage(md)
	m.Set(md.Fields().Get(0), protoreflect.ValueOfString(validID))
	xt := dynamicpb.NewExtensionType(fd.Extensions().Get(0))
	m2 := dynamicpb.NewMessage(md)
	m2.Set(md.Fields().Get(0), protoreflect.ValueOfString(validID))
	m2.Set(xt.TypeDescriptor(), protoreflect.ValueOfString("")) // explicitly set empty
	compareOn(t, md, m, m2)
}
