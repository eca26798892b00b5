package randid

import "testing"

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := New()
		if len(id) != 32 {
			t.Fatalf("New() = %q, want 32 hex characters", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
	if h := Hex(4); len(h) != 8 {
		t.Errorf("Hex(4) = %q, want 8 hex characters", h)
	}
}
