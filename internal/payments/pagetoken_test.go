package payments

import "testing"

func TestPageToken(t *testing.T) {
	for _, seq := range []int64{1, 42, 1 << 62} {
		got, err := decodePageToken(encodePageToken(seq))
		if err != nil || got != seq {
			t.Fatalf("round trip of %d = %d, %v", seq, got, err)
		}
	}
	tests := []struct {
		name  string
		token string
	}{
		{"not base64", "!!!"},
		{"no prefix", "MTI"},        // "12"
		{"zero", "cDEuMA"},          // "p1.0"
		{"negative", "cDEuLTE"},     // "p1.-1"
		{"leading zero", "cDEuMDE"}, // "p1.01"
		{"not a number", "cDEueA"},  // "p1.x"
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodePageToken(tt.token); err == nil {
				t.Fatalf("decodePageToken(%q): no error", tt.token)
			}
		})
	}
	if seq, err := decodePageToken(""); err != nil || seq != 0 {
		t.Fatalf("empty token = %d, %v; want the start", seq, err)
	}
}
