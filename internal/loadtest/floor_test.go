package loadtest

import "testing"

// TestMeasureFloor: the floor is a positive time per packet, the median of
// its trials.
func TestMeasureFloor(t *testing.T) {
	f, err := MeasureFloor(3, 2000)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Trials) != 3 || f.Microseconds <= 0 {
		t.Fatalf("floor %+v", f)
	}
	lo, hi := f.Trials[0], f.Trials[0]
	for _, x := range f.Trials {
		lo, hi = min(lo, x), max(hi, x)
	}
	if f.Microseconds < lo || f.Microseconds > hi {
		t.Fatalf("median %.2f outside the trials %v", f.Microseconds, f.Trials)
	}
	t.Logf("floor_us=%.2f (trials %v)", f.Microseconds, f.Trials)
}
