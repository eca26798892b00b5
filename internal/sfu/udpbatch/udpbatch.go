// Package udpbatch sends bursts of UDP datagrams in as few system calls as
// the kernel allows. Between Begin and Flush, the datagrams written to a Conn
// are copied into one buffer; Flush sends each run of consecutive datagrams to
// the same address and of the same size (the last may be shorter) with one
// sendmsg carrying a UDP_SEGMENT control message (UDP generic segmentation
// offload, Linux 4.18+), which the kernel cuts back into separate datagrams.
// Where the kernel refuses, or off Linux, datagrams are sent one by one.
//
// Outside a batch, a write is sent at once, so a Conn can be shared by a
// batching writer and by writers that must not wait (ICE checks, DTLS,
// RTCP): during a batch their datagrams join it and leave with it, within
// microseconds. Net opens pion's sockets as Conns.
//
// It owns only the sockets it opens and knows nothing of RTP, ICE or WebRTC.
package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

const (
	// maxBatchBytes bounds the buffered bytes of a batch: about 27 full
	// 1,200-byte RTP packets, a whole delta frame at a few Mbit/s. A batch
	// that would grow past it is flushed first, so a GSO run never comes near
	// the 64 KiB limit of one UDP send.
	maxBatchBytes = 32 << 10
	// maxSegments is the kernel's limit of segments per GSO send
	// (UDP_MAX_SEGMENTS: 64 since Linux 4.18).
	maxSegments = 64
	// maxSegmentSize is the largest datagram sent with GSO: a GSO segment
	// larger than the path MTU is refused (EINVAL), where a plain send would
	// be fragmented. 1,452 bytes fits an Ethernet MTU under IPv6.
	maxSegmentSize = 1452
	// maxRuns bounds the runs of a batch (a new run starts at each change of
	// destination or size); a batch with more is flushed.
	maxRuns = 64
)

// Stats counts what a Conn sent.
type Stats struct {
	Datagrams uint64 // datagrams sent, batched or not
	Sends     uint64 // system calls that sent them
	GSOSends  uint64 // of which GSO sends of two datagrams or more
	Errors    uint64 // failed sends
	GSO       bool   // whether GSO is still in use on the socket
}

// run is a sequence of buffered datagrams that one GSO send can carry.
type run struct {
	to       netip.AddrPort
	off, end int // bytes of buf
	size     int // every datagram but the last is this long
	n        int // datagrams
	short    bool
}

// Conn is a UDP socket whose writes can be batched. Reads, deadlines and
// addresses are the embedded socket's; WriteMsgUDP and Write bypass batching.
type Conn struct {
	*net.UDPConn
	onClose func(*Conn)
	// sendGSO sends datagrams of size bytes (the last may be shorter) in one
	// system call; a test may replace it before the first write.
	sendGSO func(b []byte, size int, to netip.AddrPort) error

	mu       sync.Mutex
	batching bool
	closed   bool
	gso      bool // the kernel takes UDP_SEGMENT on this socket
	gsoUsed  bool // a GSO send has succeeded
	buf      []byte
	runs     []run
	oob      []byte
	lastErr  error

	ctr *counters // the Conn's own, or shared by a Net's Conns
}

type counters struct {
	datagrams, sends, gsoSends, errs atomic.Uint64
}

// Wrap makes a batching Conn of a UDP socket, which it then owns.
func Wrap(c *net.UDPConn) *Conn {
	return wrap(c, &counters{})
}

func wrap(c *net.UDPConn, ctr *counters) *Conn {
	bc := &Conn{UDPConn: c, ctr: ctr}
	bc.sendGSO = bc.sendSegments
	bc.gso = gsoSupported(c)
	if bc.gso {
		bc.oob = newSegmentOOB()
	}
	return bc
}

// Begin starts a batch: writes are buffered until Flush. It does nothing
// where GSO is unavailable, as batching would then save nothing.
func (c *Conn) Begin() {
	c.mu.Lock()
	if c.gso && !c.closed {
		c.batching = true
		if c.buf == nil {
			c.buf = make([]byte, 0, maxBatchBytes)
			c.runs = make([]run, 0, maxRuns)
		}
	}
	c.mu.Unlock()
}

// Flush sends the batch and ends it.
func (c *Conn) Flush() {
	c.mu.Lock()
	c.flushLocked()
	c.batching = false
	c.mu.Unlock()
}

// Stats reports the socket's counters (for a socket of a Net, the Net's).
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	gso := c.gso
	c.mu.Unlock()
	s := c.ctr.stats()
	s.GSO = gso
	return s
}

func (c *counters) stats() Stats {
	return Stats{Datagrams: c.datagrams.Load(), Sends: c.sends.Load(),
		GSOSends: c.gsoSends.Load(), Errors: c.errs.Load()}
}

// LastError returns the last error of a batched send, which its writer could
// not be told of.
func (c *Conn) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// WriteToAddrPort sends b to addr, or adds it to the open batch. It is the
// write pion/ice uses (ice.AddrPortReaderWriter).
func (c *Conn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if c.batching && len(b) <= maxSegmentSize {
		c.addLocked(b, addr)
		c.mu.Unlock()
		return len(b), nil
	}
	if c.batching {
		c.flushLocked() // keep the order of the batch and this datagram
	}
	c.mu.Unlock()
	c.ctr.datagrams.Add(1)
	c.ctr.sends.Add(1)
	n, err := c.UDPConn.WriteToUDPAddrPort(b, addr)
	if err != nil {
		c.ctr.errs.Add(1)
	}
	return n, err
}

// ReadFromAddrPort reads a datagram (ice.AddrPortReaderWriter).
func (c *Conn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

// WriteToUDPAddrPort is WriteToAddrPort.
func (c *Conn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.WriteToAddrPort(b, addr)
}

// WriteToUDP is WriteToAddrPort with a *net.UDPAddr.
func (c *Conn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	if addr == nil {
		return 0, errMissingAddress
	}
	return c.WriteToAddrPort(b, addr.AddrPort())
}

// WriteTo is WriteToAddrPort with a net.Addr, which must be a *net.UDPAddr.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: net.InvalidAddrError("not a UDP address")}
	}
	return c.WriteToAddrPort(b, ua.AddrPort())
}

// Close drops any batch and closes the socket.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed, c.batching = true, false
	c.buf, c.runs = nil, nil
	c.mu.Unlock()
	if c.onClose != nil {
		c.onClose(c)
	}
	return c.UDPConn.Close()
}

var errMissingAddress = errors.New("udpbatch: missing address")

// addLocked copies b into the batch, extending the last run when GSO can
// carry b with it.
func (c *Conn) addLocked(b []byte, to netip.AddrPort) {
	extend := false
	if k := len(c.runs); k > 0 {
		r := &c.runs[k-1]
		extend = r.to == to && !r.short && r.n < maxSegments && len(b) <= r.size && len(b) > 0
	}
	if len(c.buf)+len(b) > maxBatchBytes || (!extend && len(c.runs) == maxRuns) {
		c.flushLocked()
		extend = false
	}
	off := len(c.buf)
	c.buf = append(c.buf, b...)
	if extend {
		r := &c.runs[len(c.runs)-1]
		r.n++
		r.end = len(c.buf)
		r.short = len(b) < r.size
		return
	}
	c.runs = append(c.runs, run{to: to, off: off, end: len(c.buf), size: len(b), n: 1})
}

// flushLocked sends every run of the batch, in order.
func (c *Conn) flushLocked() {
	for i := range c.runs {
		r := &c.runs[i]
		c.ctr.datagrams.Add(uint64(r.n))
		if r.n > 1 && c.gso {
			err := c.sendGSO(c.buf[r.off:r.end], r.size, r.to)
			if err == nil {
				c.gsoUsed = true
				c.ctr.sends.Add(1)
				c.ctr.gsoSends.Add(1)
				continue
			}
			if !gsoRefused(err) {
				c.failed(err, uint64(r.n))
				continue
			}
			// The kernel or the device does not do UDP GSO: stop trying
			// on this socket and send the run datagram by datagram.
			c.gso = false
		}
		for off := r.off; off < r.end; off += r.size {
			end := min(off+r.size, r.end)
			c.ctr.sends.Add(1)
			if _, err := c.UDPConn.WriteToUDPAddrPort(c.buf[off:end], r.to); err != nil {
				c.failed(err, 1)
			}
		}
	}
	c.buf = c.buf[:0]
	c.runs = c.runs[:0]
	if !c.gso {
		c.batching = false
	}
}

func (c *Conn) failed(err error, datagrams uint64) {
	c.ctr.errs.Add(datagrams)
	c.lastErr = err
}

// Net is a transport.Net (pion's network interface) whose UDP sockets are
// batching Conns, so that whoever owns a Net can batch every write pion makes
// on its behalf: Begin and Flush apply to all of the Net's open sockets.
type Net struct {
	inner

	mu    sync.Mutex
	conns atomic.Pointer[[]*Conn] // copy-on-write
	ctr   counters
}

// Begin starts a batch on every socket of the Net.
func (n *Net) Begin() {
	if cs := n.conns.Load(); cs != nil {
		for _, c := range *cs {
			c.Begin()
		}
	}
}

// Flush sends the batch of every socket of the Net.
func (n *Net) Flush() {
	if cs := n.conns.Load(); cs != nil {
		for _, c := range *cs {
			c.Flush()
		}
	}
}

// Stats counts what every socket the Net opened sent; GSO tells whether an
// open socket still uses it.
func (n *Net) Stats() Stats {
	s := n.ctr.stats()
	if cs := n.conns.Load(); cs != nil {
		for _, c := range *cs {
			s.GSO = s.GSO || c.Stats().GSO
		}
	}
	return s
}

func (n *Net) wrap(c *net.UDPConn) *Conn {
	bc := wrap(c, &n.ctr)
	bc.onClose = n.forget
	n.mu.Lock()
	defer n.mu.Unlock()
	var next []*Conn
	if old := n.conns.Load(); old != nil {
		next = append(next, *old...)
	}
	next = append(next, bc)
	n.conns.Store(&next)
	return bc
}

func (n *Net) forget(c *Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.conns.Load()
	if old == nil {
		return
	}
	next := make([]*Conn, 0, len(*old))
	for _, x := range *old {
		if x != c {
			next = append(next, x)
		}
	}
	n.conns.Store(&next)
}
