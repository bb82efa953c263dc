package auditlog

import (
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// readOnlyServices are services of gRPC itself, whose protos carry no idempotency
// level but which change nothing.
var readOnlyServices = map[string]bool{
	"grpc.health.v1.Health":                    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// sideEffects caches NoSideEffects per method of a known service: the answer comes
// from descriptors that never change while the process runs. Names of unknown services
// are not cached, so that no caller can grow the map.
var sideEffects sync.Map // full method -> bool (true: no side effects)

// NoSideEffects reports whether the proto declares fullMethod
// ("/pkg.Service/Method") free of side effects: `option idempotency_level =
// NO_SIDE_EFFECTS;` (or it is a method of gRPC's health or reflection services).
// Everything else, a method the proto does not mark and one it does not know
// included, counts as changing state: its record is made durable before the answer.
func NoSideEffects(fullMethod string) bool {
	if v, ok := sideEffects.Load(fullMethod); ok {
		return v.(bool)
	}
	v, known := lookupNoSideEffects(fullMethod)
	if known {
		sideEffects.Store(fullMethod, v)
	}
	return v
}

func lookupNoSideEffects(fullMethod string) (noSideEffects, known bool) {
	name := strings.TrimPrefix(fullMethod, "/")
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return false, false
	}
	service, method := name[:i], name[i+1:]
	if readOnlyServices[service] {
		return true, true
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return false, false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return false, false
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return false, false
	}
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	return ok && opts.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS, true
}
