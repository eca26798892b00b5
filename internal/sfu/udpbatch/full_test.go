package udpbatch

import (
	"syscall"
	"testing"
)

// A batch whose socket is full is dropped, not waited on: the writer of the
// batch goes on at once, and the datagrams count as dropped.
func TestFullSocketDropsTheBatch(t *testing.T) {
	s := sender(t)
	calls := oneRunPerCall(t, s, 2, syscall.EAGAIN) // the send buffer filled
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
