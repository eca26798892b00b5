package udpbatch

import (
	"syscall"
	"testing"
	"time"
)

// A batch whose socket is full is dropped, not waited on: the writer of the
// batch goes on at once, and the datagrams count as dropped.
func TestFullSocketDropsTheBatch(t *testing.T) {
	s := sender(t)
	calls := oneRunPerCall(t, s, 2, syscall.EAGAIN, true) // the send buffer filled
	r := listen(t)
	s.Begin()
	var want [][]byte
	for i := range 12 {
		d := datagram(i, 1000+i/3*100) // runs of three
		_, _ = s.WriteToAddrPort(d, addrOf(r))
		if i < 3 {
			want = append(want, d)
		}
	}
	s.Flush()
	receive(t, r, want)
	nothingArrives(t, r)
	if *calls != 2 {
		t.Errorf("%d sends: a full socket was tried again", *calls)
	}
	if st := s.Stats(); st.Datagrams != 12 || st.Errors != 9 || st.Dropped != 9 {
		t.Errorf("stats %+v: want 12 datagrams, 9 dropped", st)
	}
}

// A socket that waits when full (WaitWhenFull, for a socket many peers
// share) sends the rest of the batch once the buffer drains, dropping
// nothing; one that stays full is waited for no longer than asked.
func TestFullSocketWaitsWhenAsked(t *testing.T) {
	s := sender(t)
	s.WaitWhenFull(2 * time.Second)
	oneRunPerCall(t, s, 2, syscall.EAGAIN, false) // full once, at the second call
	r := listen(t)
	s.Begin()
	var want [][]byte
	for i := range 9 {
		d := datagram(i, 1000+i/3*100) // runs of three
		_, _ = s.WriteToAddrPort(d, addrOf(r))
		want = append(want, d)
	}
	s.Flush()
	receive(t, r, want)
	if st := s.Stats(); st.Dropped != 0 || st.Errors != 0 || st.Datagrams != 9 {
		t.Errorf("stats %+v: want 9 datagrams, none dropped", st)
	}

	stuck := sender(t)
	stuck.WaitWhenFull(50 * time.Millisecond)
	oneRunPerCall(t, stuck, 1, syscall.EAGAIN, true) // full for good
	stuck.Begin()
	for i := range 6 {
		_, _ = stuck.WriteToAddrPort(datagram(i, 1000+i/3*100), addrOf(r))
	}
	start := time.Now()
	stuck.Flush()
	if took := time.Since(start); took > time.Second {
		t.Errorf("a flush waited %v for a socket that stayed full, asked for at most 50ms", took)
	}
	if st := stuck.Stats(); st.Dropped != 6 {
		t.Errorf("stats %+v: want the 6 datagrams dropped", st)
	}
}
