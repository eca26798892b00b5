// Package udpbatch sends bursts of UDP datagrams in as few system calls as
// the kernel allows. Between Begin and Flush, the datagrams written to a Conn
// are copied into one buffer; Flush sends each run of consecutive datagrams to
// the same address and of the same size (the last may be shorter) as one
// message carrying a UDP_SEGMENT control message (UDP generic segmentation
// offload, Linux 4.18+), which the kernel cuts back into separate datagrams,
// and all the runs of a batch with one sendmmsg. Where the kernel refuses,
// or off Linux, datagrams are sent one by one.
//
// Outside a batch, a write is sent at once, so a Conn can be shared by a
// batching writer and by writers that must not wait (ICE checks, DTLS,
// RTCP): during a batch their datagrams join it and leave with it, within
// microseconds. Net opens pion's sockets as Conns.
//
// A Conn's reads and unbatched writes are raw system calls too, on Linux
// (rawio_linux.go), so that they do not wake the runtime's monitor thread.
//
// It owns only the sockets it opens and knows nothing of RTP, ICE or WebRTC.
package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	maxRuns = 16
)

// Stats counts what a Conn sent.
type Stats struct {
	Datagrams uint64 // datagrams sent, batched or not
	Sends     uint64 // system calls that sent them
	GSOSends  uint64 // GSO messages (runs of two datagrams or more)
	Errors    uint64 // datagrams whose send failed
	Dropped   uint64 // of those, batched ones dropped as the socket's send buffer was full
	GSO       bool   // whether GSO is still in use on the socket
}

// run is a sequence of buffered datagrams that one GSO message can carry.
type run struct {
	to       netip.AddrPort
	off, end int // bytes of the batch buffer
	size     int // every datagram but the last is this long
	n        int // datagrams
	short    bool
	owner    Dropper // told of the drop of the run's datagrams, if any
}

// batch is what a Conn holds from Begin to Flush: the buffered datagrams
// and the scratch space of the system call that sends them.
type batch struct {
	buf  []byte
	runs []run
	msgs msgScratch
}

// Buffers lends batches to Conns, which hold one only from Begin to Flush:
// many sockets that batch in turn share a few buffers. Safe for concurrent
// use.
type Buffers struct {
	pool     sync.Pool
	maxBytes int // a batch's buffered bytes, past which it is sent
	maxRuns  int // a batch's runs (messages of one sendmmsg)
}

// NewBuffers makes an empty pool of batches for sockets that each send to
// one peer: of a few dozen datagrams.
func NewBuffers() *Buffers { return NewBuffersSized(maxBatchBytes, maxRuns) }

// NewBuffersSized makes an empty pool of batches of up to maxBytes buffered
// bytes and maxRuns runs, for a socket that sends to many peers in one
// batch: each peer's datagrams are a run, and one sendmmsg carries up to
// maxRuns of them.
func NewBuffersSized(maxBytes, maxRuns int) *Buffers {
	maxBytes, maxRuns = max(maxBytes, maxSegmentSize), max(maxRuns, 1)
	b := &Buffers{maxBytes: maxBytes, maxRuns: maxRuns}
	b.pool.New = func() any {
		return &batch{buf: make([]byte, 0, maxBytes), runs: make([]run, 0, maxRuns),
			msgs: newMsgScratch(maxRuns)}
	}
	return b
}

func (b *Buffers) get() *batch { return b.pool.Get().(*batch) }

func (b *Buffers) put(x *batch) {
	clear(x.runs) // the owners
	x.buf, x.runs = x.buf[:0], x.runs[:0]
	b.pool.Put(x)
}

// Conn is a UDP socket whose writes can be batched. Reads, deadlines and
// addresses are the embedded socket's; WriteMsgUDP and Write bypass batching.
type Conn struct {
	*net.UDPConn
	bufs    *Buffers
	onClose func(*Conn)
	// sendRuns sends the first runs of a batch in one system call and
	// returns how many it sent, and the error of the next if it failed; a
	// test may replace it before the first write.
	sendRuns func(b *batch, runs []run) (int, error)

	mu       sync.Mutex
	batching bool
	closed   bool
	gso      bool   // the kernel takes UDP_SEGMENT on this socket
	b        *batch // from Begin to Flush
	lastErr  error
	scratch  []byte // WriteFilled's, outside a batch

	ctr *counters       // the Conn's own, or shared by a Net's Conns
	raw *rawIO          // reads and unbatched writes, where the platform has them
	rc  syscall.RawConn // the raw calls', nil where there are none
	// fullWait is how long a flush may wait, in all, for a full send
	// buffer to drain before it drops the rest of its batch (WaitWhenFull).
	fullWait time.Duration
}

// WaitWhenFull lets a flush wait up to d in all for the socket's send
// buffer to drain, before it drops the rest of its batch. For a socket many
// peers share: its buffer fills when the local link cannot keep up with a
// burst to all of them (a keyframe to a hundred viewers), not because one
// peer is slow, and dropping would cost every peer the burst. 0, the
// default, drops at once. Set it before the first write.
func (c *Conn) WaitWhenFull(d time.Duration) {
	c.mu.Lock()
	c.fullWait = d
	c.mu.Unlock()
}

type counters struct {
	datagrams, sends, gsoSends, errs, dropped atomic.Uint64
}

// Wrap makes a batching Conn of a UDP socket, which it then owns; its
// batches come from bufs.
func Wrap(c *net.UDPConn, bufs *Buffers) *Conn {
	return wrap(c, bufs, &counters{})
}

func wrap(c *net.UDPConn, bufs *Buffers, ctr *counters) *Conn {
	bc := &Conn{UDPConn: c, bufs: bufs, ctr: ctr}
	bc.initRaw()
	return bc
}

// Begin starts a batch: writes are buffered until Flush. It does nothing
// where GSO is unavailable, as batching would then save nothing.
func (c *Conn) Begin() {
	c.mu.Lock()
	if c.gso && !c.closed {
		c.batching = true
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
		GSOSends: c.gsoSends.Load(), Errors: c.errs.Load(), Dropped: c.dropped.Load()}
}

// LastError returns the last error of a batched send, which its writer could
// not be told of.
func (c *Conn) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// WriteToAddrPort sends b to addr, or adds it to the open batch. It is the
// write pion/ice uses (ice.AddrPortReaderWriter). A datagram too large for
// GSO, or to a link-local address with a zone, is sent at once, after the
// batch so far.
func (c *Conn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if c.batching && len(b) <= maxSegmentSize && addr.Addr().Zone() == "" {
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
	n, err := c.writeNow(b, addr)
	if err != nil {
		c.ctr.errs.Add(1)
	}
	return n, err
}

// writeNow sends b to to at once: as a raw system call where the platform
// has one (rawio_linux.go), through the net package otherwise or to a
// zoned address. Every unbatched send goes through it.
func (c *Conn) writeNow(b []byte, to netip.AddrPort) (int, error) {
	if c.raw != nil && to.Addr().Zone() == "" {
		return c.raw.writeTo(b, to)
	}
	return c.UDPConn.WriteToUDPAddrPort(b, to)
}

// ReadFromAddrPort reads a datagram (ice.AddrPortReaderWriter).
func (c *Conn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	if c.raw != nil {
		return c.raw.readFrom(b)
	}
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
	if c.b != nil {
		c.bufs.put(c.b)
		c.b = nil
	}
	c.mu.Unlock()
	if c.onClose != nil {
		c.onClose(c)
	}
	return c.UDPConn.Close()
}

var errMissingAddress = errors.New("udpbatch: missing address")

// addLocked copies b into the batch, extending the last run when GSO can
// carry b with it.
func (c *Conn) addLocked(p []byte, to netip.AddrPort) {
	off := c.reserveLocked(len(p))
	b := c.b
	b.buf = append(b.buf[:off], p...)
	c.placeLocked(off, to, nil)
}

// reserveLocked makes room for a datagram of up to size bytes at the end of
// the batch, sending the batch first when it would grow too large, and
// returns its offset.
func (c *Conn) reserveLocked(size int) int {
	if c.b == nil {
		c.b = c.bufs.get()
	}
	if len(c.b.buf)+size > c.bufs.maxBytes {
		c.sendLocked()
	}
	return len(c.b.buf)
}

// placeLocked adds the datagram at b.buf[off:] to the batch, extending the
// last run when GSO can carry it with it.
func (c *Conn) placeLocked(off int, to netip.AddrPort, owner Dropper) {
	b := c.b
	n := len(b.buf) - off
	extend := false
	if k := len(b.runs); k > 0 {
		r := &b.runs[k-1]
		extend = r.to == to && r.owner == owner && !r.short && r.n < maxSegments && n <= r.size && n > 0
	}
	if !extend && len(b.runs) == c.bufs.maxRuns {
		// Send the runs so far; the datagram moves to the front.
		p := b.buf[off:]
		b.buf = b.buf[:off]
		c.sendLocked()
		b.buf = append(b.buf[:0], p...)
		off = 0
	}
	if extend {
		r := &b.runs[len(b.runs)-1]
		r.n++
		r.end = len(b.buf)
		r.short = n < r.size
		return
	}
	b.runs = append(b.runs, run{to: to, off: off, end: len(b.buf), size: n, n: 1, owner: owner})
}

// A Filler writes one datagram into dst, which is as long as the size it
// was given for, and returns the datagram's length.
type Filler interface {
	Fill(dst []byte) (int, error)
}

// A Dropper is a Filler told how many of the datagrams it filled into a
// batch were dropped because the socket's send buffer was full (one Conn
// may batch for many writers, each of which counts its own). A run of a
// batch holds one Dropper's datagrams, so it must be comparable (a
// pointer). It is called with the Conn locked and must not use it.
type Dropper interface {
	Dropped(datagrams int)
}

// WriteFilled sends a datagram of up to size bytes that f writes in place:
// into the batch when one is open, so that the datagram is written once and
// never copied; otherwise into a scratch buffer of the Conn, sent at once.
// f is called with the Conn locked and must not use it.
func (c *Conn) WriteFilled(to netip.AddrPort, size int, f Filler) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if c.batching && size <= maxSegmentSize && to.Addr().Zone() == "" {
		off := c.reserveLocked(size)
		b := c.b
		b.buf = b.buf[:off+size]
		n, err := f.Fill(b.buf[off:])
		if err != nil || n <= 0 || n > size {
			b.buf = b.buf[:off]
			c.mu.Unlock()
			return 0, fillError(err)
		}
		b.buf = b.buf[:off+n]
		owner, _ := f.(Dropper)
		c.placeLocked(off, to, owner)
		c.mu.Unlock()
		return n, nil
	}
	if c.batching {
		c.flushLocked() // keep the order of the batch and this datagram
	}
	if cap(c.scratch) < size {
		c.scratch = make([]byte, size)
	}
	n, err := f.Fill(c.scratch[:size])
	if err != nil || n <= 0 || n > size {
		c.mu.Unlock()
		return 0, fillError(err)
	}
	c.ctr.datagrams.Add(1)
	c.ctr.sends.Add(1)
	n, err = c.writeNow(c.scratch[:n], to)
	c.mu.Unlock()
	if err != nil {
		c.ctr.errs.Add(1)
	}
	return n, err
}

var errFill = errors.New("udpbatch: the datagram does not fit")

func fillError(err error) error {
	if err != nil {
		return err
	}
	return errFill
}

// flushLocked sends the batch and gives its buffer back.
func (c *Conn) flushLocked() {
	if c.b == nil {
		return
	}
	c.sendLocked()
	c.bufs.put(c.b)
	c.b = nil
	if !c.gso {
		c.batching = false
	}
}

// sendLocked sends every run of the batch, in order: as many per system call
// as the kernel takes (sendmmsg), each run of two datagrams or more as one
// GSO message.
func (c *Conn) sendLocked() {
	b := c.b
	runs := b.runs
	var waitUntil time.Time // of a wait for a full buffer, once one started
	for len(runs) > 0 {
		if !c.gso {
			c.sendPlain(b.buf, runs)
			break
		}
		n, err := c.sendRuns(b, runs)
		if n > 0 {
			c.ctr.sends.Add(1)
		}
		for _, r := range runs[:n] {
			c.ctr.datagrams.Add(uint64(r.n))
			if r.n > 1 {
				c.ctr.gsoSends.Add(1)
			}
		}
		runs = runs[n:]
		if err == nil {
			continue
		}
		if wouldBlock(err) {
			if c.fullWait > 0 {
				if waitUntil.IsZero() {
					waitUntil = time.Now().Add(c.fullWait)
				}
				if left := time.Until(waitUntil); left > 0 && c.waitWritable(left) {
					continue // drained: send the rest
				}
			}
			// The socket's buffer is full: drop the rest of the batch
			// rather than wait (longer): a writer of many peers would
			// wait for this one.
			for _, r := range runs {
				c.ctr.datagrams.Add(uint64(r.n))
				c.ctr.dropped.Add(uint64(r.n))
				c.failed(err, uint64(r.n))
				if r.owner != nil {
					r.owner.Dropped(r.n)
				}
			}
			break
		}
		if runs[0].n > 1 && gsoRefused(err) {
			// The kernel or the device does not do UDP GSO: stop trying
			// on this socket; the rest goes datagram by datagram.
			c.gso = false
			continue
		}
		c.ctr.datagrams.Add(uint64(runs[0].n))
		c.failed(err, uint64(runs[0].n))
		runs = runs[1:]
	}
	clear(b.runs)
	b.buf, b.runs = b.buf[:0], b.runs[:0]
}

// sendPlain sends runs datagram by datagram.
func (c *Conn) sendPlain(buf []byte, runs []run) {
	for _, r := range runs {
		c.ctr.datagrams.Add(uint64(r.n))
		for off := r.off; off < r.end; off += r.size {
			c.ctr.sends.Add(1)
			if _, err := c.writeNow(buf[off:min(off+r.size, r.end)], r.to); err != nil {
				c.failed(err, 1)
			}
		}
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
	bufs *Buffers

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
	bc := wrap(c, n.bufs, &n.ctr)
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

// Lookup returns the open socket of the Net bound to local's port, and to
// its address when several are bound to that port; nil if there is none.
func (n *Net) Lookup(local netip.AddrPort) *Conn {
	cs := n.conns.Load()
	if cs == nil {
		return nil
	}
	var found *Conn
	for _, c := range *cs {
		la := c.LocalAddr().(*net.UDPAddr).AddrPort()
		if la.Port() != local.Port() {
			continue
		}
		if la.Addr().Unmap() == local.Addr().Unmap() {
			return c
		}
		if found == nil {
			found = c
		}
	}
	return found
}
