package payments

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTransferReference(t *testing.T) {
	tests := []struct {
		name string
		memo string
		want int // length in bytes
	}{
		{"short", "rent", 4},
		{"exactly the limit", string(make([]byte, 256)), 256},
		{"two-byte characters cut on a boundary", strings.Repeat("é", 200), 256},
		{"three-byte characters cut on a boundary", strings.Repeat("€", 200), 255},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := transferReference(tt.memo)
			if len(got) != tt.want || !utf8.ValidString(got) || !strings.HasPrefix(tt.memo, got) {
				t.Fatalf("transferReference = %d bytes (valid UTF-8 %v), want a %d-byte prefix", len(got), utf8.ValidString(got), tt.want)
			}
		})
	}
}
