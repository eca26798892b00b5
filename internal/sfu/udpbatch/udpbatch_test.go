package udpbatch

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// listen opens a plain UDP socket on 127.0.0.1 with room for a burst.
func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// sender opens a batching socket on 127.0.0.1.
func sender(t testing.TB) *Conn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	bc := Wrap(c, NewBuffers())
	t.Cleanup(func() { _ = bc.Close() })
	return bc
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// datagram is n bytes that tell which datagram they are.
func datagram(id, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(id*31 + i)
	}
	copy(b, fmt.Sprintf("#%d#", id))
	return b
}

// receive reads want datagrams and fails on any difference.
func receive(t *testing.T, c *net.UDPConn, want [][]byte) {
	t.Helper()
	buf := make([]byte, 65536)
	for i, w := range want {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i, len(want), err)
		}
		if !bytes.Equal(buf[:n], w) {
			t.Fatalf("datagram %d: got %d bytes %q..., want %d bytes %q...", i, n, buf[:min(n, 8)], len(w), w[:min(len(w), 8)])
		}
	}
}

// nothingArrives checks that no datagram is waiting.
func nothingArrives(t *testing.T, c *net.UDPConn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	buf := make([]byte, 2048)
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("a datagram of %d bytes arrived before the flush", n)
	}
}

// A batch with runs of equal datagrams, shorter ends, interleaved
// destinations and odd sizes arrives as the same datagrams, in order.
func TestBatchArrivesAsSeparateDatagrams(t *testing.T) {
	s := sender(t)
	a, b := listen(t), listen(t)
	var toA, toB [][]byte
	sizes := []int{1200, 1200, 1200, 1200, 700, // a frame: full packets, short last
		1200, 1200, 90, // another, whose last is tiny
		300, 300, 300, // equal small ones
		1200, 1300, 1200, // a larger one breaks the run
		1, 1452, 1453, 65000, // the edges: smallest, largest for GSO, too large, huge
	}
	s.Begin()
	id := 0
	for _, n := range sizes {
		for _, dst := range []*net.UDPConn{a, a, b} { // two to a, then one to b
			d := datagram(id, n)
			id++
			if _, err := s.WriteToAddrPort(d, addrOf(dst)); err != nil {
				t.Fatal(err)
			}
			if dst == a {
				toA = append(toA, d)
			} else {
				toB = append(toB, d)
			}
		}
	}
	s.Flush()
	receive(t, a, toA)
	receive(t, b, toB)
	st := s.Stats()
	t.Logf("%+v", st)
	if st.Datagrams != uint64(len(toA)+len(toB)) || st.Errors != 0 {
		t.Errorf("stats %+v: want %d datagrams and no error", st, len(toA)+len(toB))
	}
	if gsoSupported(s.UDPConn) && (st.GSOSends == 0 || st.Sends >= st.Datagrams) {
		t.Errorf("GSO is supported but was not used: %+v", st)
	}
}

// A whole frame goes in one send, and nothing leaves before Flush.
func TestFrameIsOneSend(t *testing.T) {
	s := sender(t)
	if !s.Stats().GSO {
		t.Skip("no UDP GSO on this kernel")
	}
	r := listen(t)
	var want [][]byte
	s.Begin()
	for i := range 9 {
		n := 1188
		if i == 8 {
			n = 431
		}
		want = append(want, datagram(i, n))
		_, _ = s.WriteToAddrPort(want[i], addrOf(r))
	}
	nothingArrives(t, r)
	s.Flush()
	receive(t, r, want)
	if st := s.Stats(); st.Sends != 1 || st.GSOSends != 1 || st.Datagrams != 9 {
		t.Errorf("stats %+v: want 9 datagrams in one GSO send", st)
	}
}

// A batch larger than the buffer or than a GSO send is split, not lost.
func TestLargeBatch(t *testing.T) {
	s := sender(t)
	r := listen(t)
	var want [][]byte
	s.Begin()
	for i := range 300 {
		want = append(want, datagram(i, 1000+i%2*200))
		_, _ = s.WriteToAddrPort(want[i], addrOf(r))
		if i == 150 {
			s.Flush()
			s.Begin()
		}
	}
	s.Flush()
	receive(t, r, want)
	t.Logf("%+v", s.Stats())
}

// When the kernel refuses GSO, the batch is sent datagram by datagram, and
// GSO is not tried again on that socket.
func TestFallbackWhenGSORefused(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.EINVAL} {
		t.Run(errno.Error(), func(t *testing.T) {
			s := sender(t)
			s.mu.Lock()
			s.gso = true // as if the kernel knew the option
			s.mu.Unlock()
			refused := 0
			s.sendRuns = func(*batch, []run) (int, error) {
				refused++
				return 0, &osSyscallError{errno}
			}
			r := listen(t)
			var want [][]byte
			for batch := range 3 {
				s.Begin()
				for i := range 5 {
					d := datagram(batch*10+i, 1200)
					want = append(want, d)
					_, _ = s.WriteToAddrPort(d, addrOf(r))
				}
				s.Flush()
			}
			receive(t, r, want)
			st := s.Stats()
			if refused != 1 || st.GSO || st.GSOSends != 0 || st.Sends != 15 || st.Errors != 0 {
				t.Errorf("refused %d times, stats %+v: want one refusal then plain sends", refused, st)
			}
		})
	}
}

// A system call that sends only some runs, or fails on one with an ordinary
// error, loses nothing else and keeps the order.
func TestPartialAndFailedSends(t *testing.T) {
	s := sender(t)
	calls := oneRunPerCall(t, s, 2, syscall.EPERM, false) // the second run is lost
	r := listen(t)
	s.Begin()
	var want [][]byte
	for i := range 12 {
		d := datagram(i, 1000+i/3*100) // runs of three
		_, _ = s.WriteToAddrPort(d, addrOf(r))
		if i/3 != 1 {
			want = append(want, d)
		}
	}
	s.Flush()
	receive(t, r, want)
	nothingArrives(t, r)
	if st := s.Stats(); st.Sends != 3 || st.GSOSends != 3 || st.Errors != 3 || st.Datagrams != 12 || !st.GSO {
		t.Errorf("stats %+v after %d calls: want 3 GSO sends, 3 errors", st, *calls)
	}
	if s.LastError() == nil {
		t.Error("the failed send's error was not kept")
	}
}

// osSyscallError wraps an errno as os.SyscallError does.
type osSyscallError struct{ errno syscall.Errno }

func (e *osSyscallError) Error() string { return "sendmsg: " + e.errno.Error() }
func (e *osSyscallError) Unwrap() error { return e.errno }

// Outside a batch a write leaves at once; during one, other goroutines'
// writes join it and leave at the flush; every datagram arrives intact.
func TestConcurrentWritesDuringBatches(t *testing.T) {
	s := sender(t)
	media, other := listen(t), listen(t)

	// Immediate outside a batch.
	d := datagram(1, 100)
	if _, err := s.WriteToAddrPort(d, addrOf(other)); err != nil {
		t.Fatal(err)
	}
	receive(t, other, [][]byte{d})

	// During a batch: buffered with it (when batching is possible at all).
	s.Begin()
	d = datagram(2, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = s.WriteTo(d, other.LocalAddr())
	}()
	<-done
	if s.Stats().GSO {
		nothingArrives(t, other)
	}
	s.Flush()
	receive(t, other, [][]byte{d})

	// Many writers at once, under the race detector in CI.
	const frames, perFrame, writers, perWriter = 200, 6, 3, 300
	var wg sync.WaitGroup
	var wantOther [writers][][]byte
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				d := datagram(w*10000+i, 60+w)
				wantOther[w] = append(wantOther[w], d)
				if _, err := s.WriteToAddrPort(d, addrOf(other)); err != nil {
					t.Error(err)
					return
				}
				if i%16 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	var wantMedia [][]byte
	for f := range frames {
		s.Begin()
		for i := range perFrame {
			d := datagram(f*perFrame+i, 1200)
			wantMedia = append(wantMedia, d)
			_, _ = s.WriteToAddrPort(d, addrOf(media))
		}
		s.Flush()
	}
	wg.Wait()
	receive(t, media, wantMedia)
	// Each writer's datagrams arrive in its order; the writers interleave.
	got := map[int][][]byte{}
	buf := make([]byte, 2048)
	for range writers * perWriter {
		_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := other.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		w := n - 60
		got[w] = append(got[w], append([]byte(nil), buf[:n]...))
	}
	for w := range writers {
		if len(got[w]) != perWriter {
			t.Fatalf("writer %d: %d datagrams, want %d", w, len(got[w]), perWriter)
		}
		for i := range got[w] {
			if !bytes.Equal(got[w][i], wantOther[w][i]) {
				t.Fatalf("writer %d datagram %d differs", w, i)
			}
		}
	}
	t.Logf("%+v", s.Stats())
}

// A closed Conn refuses writes and drops its batch; Net forgets it.
func TestNetAndClose(t *testing.T) {
	n, err := NewNet(NewBuffers())
	if err != nil {
		t.Fatal(err)
	}
	uc, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := uc.(*Conn)
	if !ok {
		t.Fatalf("ListenUDP returned %T, want *Conn", uc)
	}
	pc, err := n.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pc.(*Conn); !ok {
		t.Fatalf("ListenPacket returned %T, want *Conn", pc)
	}
	_ = pc.Close()
	r := listen(t)
	n.Begin()
	want := [][]byte{datagram(1, 1200), datagram(2, 1200)}
	for _, d := range want {
		_, _ = c.WriteTo(d, r.LocalAddr())
	}
	n.Flush()
	receive(t, r, want)
	if st := n.Stats(); st.Datagrams != 2 {
		t.Errorf("net stats %+v, want 2 datagrams", st)
	}
	n.Begin()
	_, _ = c.WriteTo(datagram(3, 1200), r.LocalAddr())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	n.Flush()
	if _, err := c.WriteTo(datagram(4, 10), r.LocalAddr()); err == nil {
		t.Error("write after Close succeeded")
	}
	if cs := n.conns.Load(); cs == nil || len(*cs) != 0 {
		t.Errorf("the Net still holds closed sockets")
	}
	if c.Stats().GSO {
		nothingArrives(t, r)
	}
}

// BenchmarkSend compares, per datagram, plain sends with GSO batches of a
// video frame's packets (five of 1,200 bytes and one shorter) on loopback.
func BenchmarkSend(b *testing.B) {
	for _, batched := range []bool{false, true} {
		b.Run(fmt.Sprintf("batched=%v", batched), func(b *testing.B) {
			s := sender(b)
			r := listen(b)
			to := addrOf(r)
			go func() {
				buf := make([]byte, 2048)
				for {
					if _, err := r.Read(buf); err != nil {
						return
					}
				}
			}()
			frame := [][]byte{datagram(0, 1200), datagram(1, 1200), datagram(2, 1200),
				datagram(3, 1200), datagram(4, 1200), datagram(5, 600)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(frame) {
				if batched {
					s.Begin()
				}
				for _, d := range frame {
					_, _ = s.WriteToAddrPort(d, to)
				}
				if batched {
					s.Flush()
				}
			}
		})
	}
}

// oneRunPerCall makes s send one run per system call and fail with errno
// at call number fail: that call only, or it and every later one (forGood:
// a socket that stays full). It returns the count of calls, and skips where
// GSO is off.
func oneRunPerCall(t *testing.T, s *Conn, fail int, errno syscall.Errno, forGood bool) *int {
	t.Helper()
	if !s.Stats().GSO {
		t.Skip("no UDP GSO on this kernel")
	}
	real := s.sendRuns
	calls := 0
	s.sendRuns = func(b *batch, runs []run) (int, error) {
		calls++
		if calls == fail || calls > fail && forGood {
			return 0, &osSyscallError{errno}
		}
		return real(b, runs[:1])
	}
	return &calls
}
