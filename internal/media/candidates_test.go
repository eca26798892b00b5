package media

import "testing"

func TestCandidateQueue(t *testing.T) {
	var q CandidateQueue
	for i := range MaxEarlyCandidates {
		if !q.Push(Candidate{Candidate: "candidate:" + string(rune('a'+i%26))}) {
			t.Fatalf("Push %d refused below the bound", i)
		}
	}
	if q.Push(Candidate{Candidate: "candidate:over"}) {
		t.Error("Push past the bound was kept")
	}
	got := q.Take()
	if len(got) != MaxEarlyCandidates || got[0].Candidate != "candidate:a" {
		t.Errorf("Take returned %d candidates starting %+v", len(got), got[0])
	}
	if rest := q.Take(); len(rest) != 0 {
		t.Errorf("second Take returned %d", len(rest))
	}
}
