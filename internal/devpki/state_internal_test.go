package devpki

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzState: whatever ca/state.json holds, validating it never panics, and a state that
// validates marshals to a file that reads back to the same state.
func FuzzState(f *testing.F) {
	good, err := newState().marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1,"issuing":"intermediate-2","cas":[{"name":"root","crl_number":3,"revoked":[{"serial":"0A","time":"2026-01-02T03:04:05Z"}]},{"name":"intermediate"},{"name":"intermediate-2"}]}`))
	f.Add([]byte(`{"version":1,"issuing":"root","cas":[{"name":"root"}]}`))
	f.Add([]byte(`{"version":1,"issuing":"intermediate","cas":[{"name":"root"},{"name":"intermediate","crl_number":-1}]}`))
	f.Add([]byte(`{"version":1,"issuing":"intermediate","cas":[{"name":"root"},{"name":"intermediate","revoked":[{"serial":"zz"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		var st state
		if dec.Decode(&st) != nil || st.validate() != nil {
			return
		}
		for i := range st.CAs {
			_ = st.CAs[i].entries()
			_ = generation(st.CAs[i].Name)
		}
		out, err := st.marshal()
		if err != nil {
			t.Fatalf("marshal a valid state: %v", err)
		}
		var back state
		if err := json.Unmarshal(out, &back); err != nil || back.validate() != nil || back.Issuing != st.Issuing || len(back.CAs) != len(st.CAs) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestGeneration(t *testing.T) {
	tests := []struct {
		name string
		gen  int
	}{
		{name: "intermediate", gen: 1},
		{name: "intermediate-2", gen: 2},
		{name: "intermediate-17", gen: 17},
		{name: "intermediate-999999", gen: 999999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !intermediateName.MatchString(tt.name) || generation(tt.name) != tt.gen || intermediateNameOf(tt.gen) != tt.name {
				t.Errorf("generation(%q) = %d, want %d and back", tt.name, generation(tt.name), tt.gen)
			}
		})
	}
	for _, bad := range []string{"intermediate-1", "intermediate-0", "intermediate-02", "intermediate-1000000", "intermediate-", "root", "../intermediate", "intermediate-2/x"} {
		if intermediateName.MatchString(bad) {
			t.Errorf("%q is accepted as an intermediate name", bad)
		}
	}
}
