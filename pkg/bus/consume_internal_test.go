package bus

import (
	"strings"
	"testing"
)

func TestHeaderValue(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxReasonLen) // 2 bytes each: the cut falls inside a rune
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain", in: "decode: bad json", want: "decode: bad json"},
		{name: "line breaks", in: "a\r\nb\nc", want: "a  b c"},
		{name: "truncated on a rune boundary", in: long, want: strings.Repeat("é", maxReasonLen/2) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := headerValue(tt.in); got != tt.want {
				t.Errorf("headerValue = %q (%d bytes), want %q", got, len(got), tt.want)
			}
		})
	}
}
