package validationtest

import (
	"math/rand/v2"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Fill sets the string, integer, bool and message fields of m, recursively, to values
// drawn by rng: strings from values, integers from ints (truncated to 32 bits for int32
// fields). Each field is left unset one time in four; lists and maps are left empty.
func Fill(rng *rand.Rand, m protoreflect.Message, values []string, ints []int64) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if rng.IntN(4) == 0 || f.IsList() || f.IsMap() {
			continue
		}
		switch f.Kind() {
		case protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString(values[rng.IntN(len(values))]))
		case protoreflect.Int64Kind:
			m.Set(f, protoreflect.ValueOfInt64(ints[rng.IntN(len(ints))]))
		case protoreflect.Int32Kind:
			m.Set(f, protoreflect.ValueOfInt32(int32(ints[rng.IntN(len(ints))])))
		case protoreflect.BoolKind:
			m.Set(f, protoreflect.ValueOfBool(rng.IntN(2) == 0))
		case protoreflect.MessageKind:
			Fill(rng, m.Mutable(f).Message(), values, ints)
		}
	}
}
