package validation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"mtlsbank/internal/refusal"
)

// validateProto is the file that declares protovalidate's annotations.
const validateProto = "buf/validate/validate.proto"

// A Validator checks messages against their protovalidate rules. It is safe for
// concurrent use; every rule is compiled when it is made, so a call only evaluates.
type Validator struct {
	v      protovalidate.Validator
	native map[protoreflect.FullName]*nativeCheck // messages whose valid values Go accepts (native.go)
	logger *slog.Logger
}

// compiled is the process's one protovalidate.Validator: the rules depend only on the
// descriptors linked into the binary, which do not change after init, and compiling them
// (CEL) costs milliseconds that every server of a process, and every test server, would
// otherwise pay again.
var compiled = sync.OnceValues(func() (protovalidate.Validator, error) {
	return protovalidate.New(protovalidate.WithMessageDescriptors(annotated(protoregistry.GlobalFiles)...))
})

// natives are the process's native checks, planned once like compiled.
var natives = sync.OnceValue(func() map[protoreflect.FullName]*nativeCheck {
	return planNative(annotated(protoregistry.GlobalFiles))
})

// New returns a Validator over the rules of every message linked into the binary. A rule
// that does not compile is an error here, at startup, rather than an Internal error on
// the first request it applies to. Messages of files that do not use protovalidate (the
// health service's) have no rules; they are admitted at the cost of one cache lookup.
// Rules that fail while they are evaluated (a bug in a rule) are logged to logger, which
// may be nil.
func New(logger *slog.Logger) (*Validator, error) {
	v, err := compiled()
	if err != nil {
		return nil, fmt.Errorf("validation: compile the protovalidate rules: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Validator{v: v, native: natives(), logger: logger}, nil
}

// annotated returns every message, nested ones included, of the files in files that
// import protovalidate's annotations directly or through another file.
func annotated(files *protoregistry.Files) []protoreflect.MessageDescriptor {
	uses := map[string]bool{} // by file path
	var usesRules func(fd protoreflect.FileDescriptor) bool
	usesRules = func(fd protoreflect.FileDescriptor) bool {
		if fd.Path() == validateProto {
			return true
		}
		if u, ok := uses[fd.Path()]; ok {
			return u
		}
		uses[fd.Path()] = false // an import cycle cannot happen, but must not recurse forever
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			if usesRules(imports.Get(i).FileDescriptor) {
				uses[fd.Path()] = true
				return true
			}
		}
		return false
	}
	var out []protoreflect.MessageDescriptor
	var add func(ms protoreflect.MessageDescriptors)
	add = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			out = append(out, m)
			add(m.Messages())
		}
	}
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if fd.Path() != validateProto && usesRules(fd) {
			add(fd.Messages())
		}
		return true
	})
	return out
}

// Check returns nil when msg satisfies its rules. Otherwise it returns the status error
// the client gets: InvalidArgument (see refusalOf), or Internal, logged, when a rule could
// not be evaluated.
func (v *Validator) Check(ctx context.Context, msg proto.Message) error {
	if m := msg.ProtoReflect(); v.native[m.Descriptor().FullName()].accepts(m) {
		return nil
	}
	err := v.v.Validate(msg)
	if err == nil {
		return nil
	}
	var ve *protovalidate.ValidationError
	if errors.As(err, &ve) {
		return refusalOf(ve)
	}
	method, _ := grpc.Method(ctx)
	v.logger.ErrorContext(ctx, "validation: a rule could not be evaluated", "method", method,
		"message", string(msg.ProtoReflect().Descriptor().FullName()), "err", err)
	return status.Error(codes.Internal, "internal error")
}

// refusalOf turns violations into the InvalidArgument status of the bank's API: the message
// lists each violation as "field.path: description"; a google.rpc.BadRequest has one field
// violation per violation; a google.rpc.ErrorInfo in refusal.Domain carries the reason of
// the first violation (see reasons) and, in its metadata "field", that violation's field.
func refusalOf(ve *protovalidate.ValidationError) error {
	if len(ve.Violations) == 0 { // protovalidate does not return such an error
		return refusal.WithErrorInfo(status.New(codes.InvalidArgument, "invalid request"), refusal.InvalidArgument, nil)
	}
	br := &errdetails.BadRequest{}
	var msg strings.Builder
	var first violation
	for i, pv := range ordered(ve.Violations) {
		vi := explain(pv)
		if i == 0 {
			first = vi
		} else {
			msg.WriteString("; ")
		}
		if vi.field != "" {
			msg.WriteString(vi.field)
			msg.WriteString(": ")
		}
		msg.WriteString(vi.description)
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: vi.field, Description: vi.description, Reason: vi.reason,
		})
	}
	var md map[string]string
	if first.field != "" {
		md = map[string]string{"field": first.field}
	}
	return refusal.WithErrorInfo(status.New(codes.InvalidArgument, msg.String()), first.reason, md, br)
}

// ordered returns the violations of fields, in the order protovalidate found them (the
// fields' order in the message), before those of rules on a whole message (such as
// bank.self_transfer), which only make sense of fields that are well-formed.
func ordered(vs []*protovalidate.Violation) []*protovalidate.Violation {
	out := make([]*protovalidate.Violation, 0, len(vs))
	for _, pv := range vs {
		if pv.FieldDescriptor != nil {
			out = append(out, pv)
		}
	}
	for _, pv := range vs {
		if pv.FieldDescriptor == nil {
			out = append(out, pv)
		}
	}
	return out
}

// violation is one protovalidate violation in the API's terms.
type violation struct {
	field, description, reason string
}

// explain maps a protovalidate violation to the field at fault, a description and the
// refusal reason of its rule.
func explain(pv *protovalidate.Violation) violation {
	p := pv.Proto
	id := p.GetRuleId()
	r, ok := reasons[id]
	if !ok {
		r = rule{reason: refusal.InvalidArgument}
	}
	field := protovalidate.FieldPathString(p.GetField())
	desc := p.GetMessage()
	if desc == "" {
		desc = "breaks rule " + id
	}
	if r.at != "" {
		if field != "" {
			field += "."
		}
		field += r.at
		// "minor_units must be greater than zero", reported on amount.minor_units.
		desc = strings.TrimPrefix(desc, r.at+" ")
	}
	return violation{field: field, description: desc, reason: r.reason}
}
