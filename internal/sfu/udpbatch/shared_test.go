package udpbatch

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
)

// sharedSender opens a batching socket on 127.0.0.1 whose batches hold up
// to runs runs, as a socket that sends to many peers.
func sharedSender(t testing.TB, runs int) *Conn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	bc := Wrap(c, NewBuffersSized(256<<10, runs))
	t.Cleanup(func() { _ = bc.Close() })
	return bc
}

// counted is a Filler that counts what a full socket dropped of its
// datagrams (Dropper), as each viewer of a shared socket does.
type counted struct {
	upper
	dropped int
}

func (c *counted) Dropped(n int) { c.dropped += n }

// One batch to many peers, each a run of datagrams, arrives whole at each,
// in as many sendmmsg as the batch's runs need.
func TestBatchToManyPeers(t *testing.T) {
	const peers, perPeer = 10, 3
	s := sharedSender(t, 4)
	if !s.Stats().GSO {
		t.Skip("no UDP GSO on this kernel")
	}
	rx := make([]*net.UDPConn, peers)
	want := make([][][]byte, peers)
	s.Begin()
	for i := range rx {
		rx[i] = listen(t)
		peer := &counted{} // one writer per peer
		for k := range perPeer {
			p := datagram(i*perPeer+k, 1100)
			u := make([]byte, len(p))
			(&upper{p}).Fill(u)
			want[i] = append(want[i], u)
			peer.p = p
			if _, err := s.WriteFilled(addrOf(rx[i]), len(p), peer); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Flush()
	for i, r := range rx {
		receive(t, r, want[i])
	}
	st := s.Stats()
	if st.Datagrams != peers*perPeer || st.GSOSends != peers || st.Sends != 3 {
		t.Errorf("stats %+v: want %d datagrams in %d GSO messages, 3 sendmmsg of up to 4", st, peers*perPeer, peers)
	}
}

// When the shared socket is full, each writer is told how many of its own
// datagrams were dropped.
func TestFullSharedSocketTellsEachOwner(t *testing.T) {
	s := sharedSender(t, 16)
	oneRunPerCall(t, s, 2, syscall.EAGAIN, true) // the first peer's run only
	owners := []*counted{{}, {}, {}}
	to := []netip.AddrPort{addrOf(listen(t)), addrOf(listen(t)), addrOf(listen(t))}
	s.Begin()
	for i, o := range owners {
		for k := range i + 2 {
			o.p = datagram(k, 500)
			if _, err := s.WriteFilled(to[i], 500, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Flush()
	if owners[0].dropped != 0 || owners[1].dropped != 3 || owners[2].dropped != 4 {
		t.Errorf("dropped %d, %d, %d; want 0, 3, 4", owners[0].dropped, owners[1].dropped, owners[2].dropped)
	}
	if st := s.Stats(); st.Dropped != 7 {
		t.Errorf("stats %+v: want 7 dropped", st)
	}
}
