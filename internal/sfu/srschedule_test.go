package sfu

import (
	"container/heap"
	"testing"
	"time"
)

// A writer held up for longer than the report interval (a stalled machine,
// a long GC pause) sends the reports it owes once, and its viewers' next
// reports stay spread over the interval as they were: the viewers do not
// all fall due at the same instant from then on, a burst of reports every
// interval for good.
func TestSenderReportsStaySpreadAfterAStall(t *testing.T) {
	sh := newShard(&writerPool{e: &Engine{}}, 0, 8)
	defer sh.stopReports()
	const viewers = 10
	spread := senderReportInterval / viewers
	stalled := time.Now().Add(-3 * senderReportInterval) // when the reports were due
	for i := range viewers {
		s := &subscriber{srNext: stalled.Add(time.Duration(i) * spread)}
		heap.Push(&sh.reporters, s)
	}
	sh.dueReports()
	if len(sh.active) != viewers {
		t.Fatalf("%d of %d viewers' overdue reports sent", len(sh.active), viewers)
	}
	now := time.Now()
	next := map[time.Time]bool{}
	for _, s := range sh.reporters {
		if !s.srDue || !s.srNext.After(now) || s.srNext.After(now.Add(senderReportInterval+reportSlack)) {
			t.Fatalf("next report due %v from now (due now %v)", s.srNext.Sub(now), s.srDue)
		}
		next[s.srNext] = true
	}
	if len(next) != viewers {
		t.Fatalf("after the stall, %d viewers' next reports are due at %d instants", viewers, len(next))
	}
}
