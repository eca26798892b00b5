package loadtest

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"golang.org/x/net/ipv4"
)

// With -shared-sockets the viewers share a few UDP sockets instead of one
// each: pion's ICE UDP mux demultiplexes a socket's packets by the server
// address they come from, so it needs a server that gives each peer its own
// port (run with -ice-socket-per-viewer, not -ice-udp-mux-port): by
// default, the viewers of one of the server's writers are all sent from
// its socket. With as many shared sockets as viewers, each has its own and
// any server will do. A shared socket is read many packets per
// system call (recvmmsg), by one goroutine.
//
// With -sample-viewers, the other viewers are header-only: once one has its
// first keyframe, the socket counts its RTP packets from their sequence
// numbers, which SRTP leaves in the clear, and drops them before pion
// decrypts them. Such a viewer still measures its join, first packet, first
// keyframe and loss; forwarding latency comes from the sampled viewers,
// which decrypt and read every packet as before.

// batchSize is how many packets one read of a shared socket may return.
const batchSize = 64

// With UDP_GRO on (-udp-gro, the default where the kernel takes it), the
// kernel hands a shared socket a UDP GSO message (the server sends a
// viewer's frame as one) whole instead of delivering its datagrams one by
// one: a read returns them coalesced, with a control message giving the
// segment size, and the socket splits them. A real NIC's receiver does this
// work on its own host; over loopback, without GRO, the kernel does it in
// the server's sendmsg and charges the server for the tool's receive path.
// A GRO read may be up to 64 KiB, so such a socket reads fewer, larger
// messages per batch.
const (
	groBatchSize = 16
	groBufSize   = 64 << 10
	groOOBSize   = 64
)

// srtpTagLen is what SRTP adds to an RTP packet with AES-GCM (which the
// tool offers first and the server prefers): a header-only viewer counts the
// bytes of the RTP packet without it, as a decrypting one does.
const srtpTagLen = 16

// sharedSocket is one UDP socket, its ICE mux and the API of the viewers on
// it. It implements ice.AddrPortReaderWriter for the mux.
type sharedSocket struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	mux  *ice.UDPMuxDefault
	api  *webrtc.API

	gro bool // UDP_GRO is on
	// coalesced counts the reads that returned several datagrams (GRO).
	coalesced atomic.Uint64

	// Read by the mux's one reading goroutine: the batch, the next message
	// in it, and what is left of the message being split (GRO), in
	// segments of seg bytes, from the address from.
	msgs       []ipv4.Message
	next, have int
	rest       []byte
	seg        int
	from       netip.AddrPort

	mu         sync.Mutex
	headerOnly map[netip.AddrPort]*viewer // by the server address sending to it
	// senders are the connected viewers on the socket, by the server
	// address that sends to each: viewers that share a socket are told
	// apart by it.
	senders map[netip.AddrPort]*viewer
}

// maxSharedBuffer bounds a shared socket's receive buffer.
const maxSharedBuffer = 256 << 20

// newSharedSocket opens a socket on host (port 0) for about viewers
// viewers, and the API whose viewers use it; with gro, it asks for UDP_GRO.
func newSharedSocket(host string, simulcast bool, viewers int, gro bool) (*sharedSocket, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		return nil, err
	}
	// As much buffer as the viewers would have had with a socket each, so
	// that sharing does not make the tool drop more when it is starved.
	setReadBuffer(conn, min(max(viewers, 1)*socketBuffer, maxSharedBuffer))
	s := &sharedSocket{conn: conn, pc: ipv4.NewPacketConn(conn), headerOnly: map[netip.AddrPort]*viewer{},
		senders: map[netip.AddrPort]*viewer{}}
	s.gro = gro && enableGRO(conn)
	s.msgs = newBatch(s.gro)
	// The mux logs an error for every packet that arrives for a viewer that
	// has just left; the report says what matters.
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	s.mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: s, Logger: quiet.NewLogger("loadtest-mux")})
	if s.api, err = viewerAPI(host == "127.0.0.1", simulcast, 0, s.mux); err != nil {
		_ = s.mux.Close()
		return nil, err
	}
	return s, nil
}

// newBatch returns the messages of one batch read: with GRO, fewer of
// them, each with room for a coalesced 64 KiB and its control message.
func newBatch(gro bool) []ipv4.Message {
	n, size := batchSize, 1500
	if gro {
		n, size = groBatchSize, groBufSize
	}
	msgs := make([]ipv4.Message, n)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, size)}
		if gro {
			msgs[i].OOB = make([]byte, groOOBSize)
		}
	}
	return msgs
}

// ReadFromAddrPort returns the next packet for pion, reading a batch when
// the last one is used up, splitting coalesced (GRO) messages into their
// datagrams, and consuming what header-only viewers count.
func (s *sharedSocket) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		pkt, from, err := s.nextDatagram()
		if err != nil {
			return 0, netip.AddrPort{}, err
		}
		if s.consume(pkt, from) {
			continue
		}
		if len(b) < len(pkt) {
			// Dropped, as a socket drops what does not fit: an error here
			// would end the mux's read loop, and with it every viewer on
			// the socket. (pion reads with 8 KiB; the server sends less.)
			continue
		}
		return copy(b, pkt), from, nil
	}
}

// nextDatagram returns the next datagram read, as the kernel would have
// delivered it without GRO: a segment of a coalesced message, or a message.
func (s *sharedSocket) nextDatagram() ([]byte, netip.AddrPort, error) {
	for len(s.rest) == 0 {
		if s.next == s.have {
			n, err := s.pc.ReadBatch(s.msgs, 0)
			if err != nil {
				return nil, netip.AddrPort{}, err
			}
			s.next, s.have = 0, n
			continue
		}
		m := &s.msgs[s.next]
		s.next++
		ua, ok := m.Addr.(*net.UDPAddr)
		if !ok || m.N == 0 {
			continue
		}
		from := ua.AddrPort()
		s.from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		s.rest = m.Buffers[0][:m.N]
		s.seg = m.N
		if m.NN > 0 {
			if seg := groSegment(m.OOB[:m.NN]); seg > 0 {
				s.seg = seg
				if seg < m.N {
					s.coalesced.Add(1)
				}
			}
		}
	}
	pkt := s.rest[:min(s.seg, len(s.rest))]
	s.rest = s.rest[len(pkt):]
	return pkt, s.from, nil
}

// consume counts an RTP packet for a header-only viewer and tells whether
// it did (then pion never sees the packet).
func (s *sharedSocket) consume(pkt []byte, from netip.AddrPort) bool {
	// RTP, not RTCP (RFC 7983 and RFC 5761: packet types 192 to 223).
	if len(pkt) < 12+srtpTagLen || pkt[0]>>6 != 2 || (pkt[1] >= 192 && pkt[1] <= 223) {
		return false
	}
	s.mu.Lock()
	v := s.headerOnly[from]
	s.mu.Unlock()
	return v != nil && v.countHeader(pkt)
}

func (s *sharedSocket) setHeaderOnly(from netip.AddrPort, v *viewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v == nil {
		delete(s.headerOnly, from)
		return
	}
	s.headerOnly[from] = v
}

// claim records that the server sends v its media from from. Viewers on
// one socket are told apart by that address: a second viewer sent from the
// same one cannot be measured (nor, often, connected), which happens when
// the server serves several viewers from one socket of its own.
func (s *sharedSocket) claim(from netip.AddrPort, v *viewer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.senders[from]; o != nil && o != v {
		return fmt.Errorf("the server sends this viewer's media from %s, as it does viewer %d's on the same client socket: "+
			"with fewer -shared-sockets than -viewers, run the server with a port per viewer (-ice-socket-per-viewer)", from, o.index)
	}
	s.senders[from] = v
	return nil
}

// unclaim forgets v's server address, when it leaves.
func (s *sharedSocket) unclaim(v *viewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for from, o := range s.senders {
		if o == v {
			delete(s.senders, from)
		}
	}
}

func (s *sharedSocket) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return s.conn.WriteToUDPAddrPort(b, addr)
}

// The rest of net.PacketConn. The mux reads through ReadFromAddrPort only.

func (s *sharedSocket) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := s.ReadFromAddrPort(b)
	return n, net.UDPAddrFromAddrPort(from), err
}

func (s *sharedSocket) WriteTo(b []byte, addr net.Addr) (int, error) { return s.conn.WriteTo(b, addr) }
func (s *sharedSocket) Close() error                                 { return s.conn.Close() }
func (s *sharedSocket) LocalAddr() net.Addr                          { return s.conn.LocalAddr() }
func (s *sharedSocket) SetDeadline(t time.Time) error                { return s.conn.SetDeadline(t) }
func (s *sharedSocket) SetReadDeadline(t time.Time) error            { return s.conn.SetReadDeadline(t) }
func (s *sharedSocket) SetWriteDeadline(t time.Time) error           { return s.conn.SetWriteDeadline(t) }

// close closes the mux and its socket; call it after the viewers left.
func (s *sharedSocket) close() error { return s.mux.Close() }

// openSharedSockets opens n shared sockets (none for n = 0).
func openSharedSockets(n, viewers int, loopbackOnly, simulcast, gro bool) ([]*sharedSocket, error) {
	host := "0.0.0.0"
	if loopbackOnly {
		host = "127.0.0.1"
	}
	var out []*sharedSocket
	for range n {
		s, err := newSharedSocket(host, simulcast, (viewers+n-1)/max(n, 1), gro)
		if err != nil {
			closeSharedSockets(out)
			return nil, fmt.Errorf("-shared-sockets: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

func closeSharedSockets(socks []*sharedSocket) {
	for _, s := range socks {
		_ = s.close()
	}
}

// countHeader counts pkt, an SRTP packet from the viewer's server address,
// if it belongs to one of its tracks, and tells whether it did.
func (v *viewer) countHeader(pkt []byte) bool {
	ssrc := binary.BigEndian.Uint32(pkt[8:])
	seq := binary.BigEndian.Uint16(pkt[2:])
	switch ssrc {
	case 0:
		return false
	case v.videoSSRC.Load():
		v.video.add(seq, len(pkt)-srtpTagLen)
	case v.audioSSRC.Load():
		v.audio.add(seq, len(pkt)-srtpTagLen)
	default:
		return false
	}
	return true
}

// goHeaderOnly hands the viewer's counting to its shared socket: from now
// on its RTP packets are counted there and not decrypted.
func (v *viewer) goHeaderOnly() {
	pair, err := v.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Remote == nil {
		return // it stays a decrypting viewer
	}
	ip, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return
	}
	from := netip.AddrPortFrom(ip.Unmap(), pair.Remote.Port)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.headerFrom.IsValid() {
		return
	}
	v.headerFrom = from
	v.sock.setHeaderOnly(from, v)
}
