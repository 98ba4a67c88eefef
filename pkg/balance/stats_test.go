package balance

import (
	"testing"
	"unsafe"
)

// TestStatsLayout keeps what a pick reads in the first cache line of a
// 128-byte (so 128-byte aligned) Stats; see the comment on Stats.
func TestStatsLayout(t *testing.T) {
	t.Parallel()
	var s Stats
	if size := unsafe.Sizeof(s); size != 128 {
		t.Errorf("Stats is %d bytes, want 128: adjust the padding", size)
	}
	for name, off := range map[string]uintptr{
		"inflight": unsafe.Offsetof(s.inflight), "ewma": unsafe.Offsetof(s.ewma), "ewmaAt": unsafe.Offsetof(s.ewmaAt),
		"probe": unsafe.Offsetof(s.probe), "dflt": unsafe.Offsetof(s.dflt), "ejectedUntil": unsafe.Offsetof(s.ejectedUntil),
		"rampUntil": unsafe.Offsetof(s.rampUntil),
	} {
		if off+8 > 64 {
			t.Errorf("%s at offset %d, outside the first cache line", name, off)
		}
	}
}
