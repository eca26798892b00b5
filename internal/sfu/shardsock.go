package sfu

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/pion/ice/v4"

	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

// Each writer shard (writers.go) serves its viewers from sockets of its
// own, one per local address ICE gathers on, with pion's ICE UDP mux over
// them: a viewer's peer connection gathers its host UDP candidates on the
// sockets of the shard it is given when it is created, and the shard's
// writer then sends a burst to all its viewers as one batch
// (udpbatch.Conn): each viewer's datagrams a run, a few sendmmsg for the
// whole shard instead of one or more per viewer, and one read loop per
// socket (the mux's) instead of one per viewer. Viewers are told apart by
// their addresses, as on the one port of Config.UDPMuxPort.
//
// The sockets are opened for a shard's first viewer and closed after its
// last has closed its peer connection. Sends never wait: a full send
// buffer drops the rest of a batch, which the large buffer asked for
// (shardSndBuf) makes rare.

const (
	// shardBatchBytes and shardBatchRuns bound a shard socket's batch:
	// the packets of several viewers' frames, each viewer's a run (one
	// message of the sendmmsg) of its own. A fuller batch is sent first.
	shardBatchBytes = 256 << 10
	shardBatchRuns  = 128
	// shardSndBuf is the send buffer asked for a shard socket, which
	// holds several bursts for all the shard's viewers.
	shardSndBuf = 4 << 20
	// shardFullWait is how long a shard's flush may wait for its socket's
	// send buffer to drain (udpbatch.Conn.WaitWhenFull): the local link is
	// then slower than a burst to all the shard's viewers, as a keyframe to
	// a hundred viewers on a 1 Gbit/s link can be. Waiting is what the
	// viewers' own sockets did, in the device's queue; beyond about a
	// frame's interval the rest of the batch is dropped.
	shardFullWait = 30 * time.Millisecond
)

// shardSocket is a shard's sockets and pion's mux over them.
type shardSocket struct {
	net *udpbatch.Net
	mux ice.UDPMux
}

// openShardSocket listens on every local address ICE gathers host
// candidates on (Config.Loopback, Config.AllowedIPs, IPv4 and IPv6), on a
// port of Config.UDPPortMin-UDPPortMax or any.
func (e *Engine) openShardSocket() (*shardSocket, error) {
	n, err := udpbatch.NewNet(e.shardBatches)
	if err != nil {
		return nil, err
	}
	addrs, err := e.gatherAddrs(n)
	if err != nil {
		return nil, err
	}
	var muxes []ice.UDPMux
	closeAll := func() {
		for _, m := range muxes {
			_ = m.Close()
		}
	}
	for _, a := range addrs {
		c, err := e.listenUDP(n, a)
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			// Listed but not bindable: an IPv6 address still in duplicate
			// address detection, or one going away. pion leaves such an
			// address out of a viewer's own candidates; so do we.
			e.log.Warn("writer's socket left out an address not usable now", "addr", a, "err", err)
			continue
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("sfu: open a writer's socket on %s: %w", a, err)
		}
		e.setSndBuf(c, shardSndBuf)
		muxes = append(muxes, ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: c, Net: n}))
	}
	if len(muxes) == 0 {
		return nil, errors.New("sfu: no usable local address to open a writer's socket on: check that an interface is up within -ice-allowed-ips (loopback needs -ice-loopback)")
	}
	return &shardSocket{net: n, mux: ice.NewMultiUDPMuxDefault(muxes...)}, nil
}

// setSndBuf asks for a shard socket's send buffer, and warns once when the
// kernel grants less (net.core.wmem_max caps what a process may ask for):
// a burst to many viewers then fills the socket, and is dropped, sooner.
func (e *Engine) setSndBuf(c *udpbatch.Conn, size int) {
	c.WaitWhenFull(shardFullWait)
	if forceSndBuf(c, size) != nil { // without CAP_NET_ADMIN, within the cap
		_ = c.SetWriteBuffer(size)
	}
	got, err := c.WriteBufferSize()
	if err != nil || got >= size || !e.sndBufWarned.CompareAndSwap(false, true) {
		return
	}
	e.log.Warn("writers' sockets get a smaller send buffer than asked, so bursts to many viewers "+
		"wait for the link, and drop, sooner: raise net.core.wmem_max (or give onair CAP_NET_ADMIN)",
		"askedBytes", size, "grantedBytes", got,
		"fix", fmt.Sprintf("sysctl -w net.core.wmem_max=%d", size))
}

// forceSndBuf asks for a send buffer past net.core.wmem_max, which only a
// process with CAP_NET_ADMIN gets; a test replaces it.
var forceSndBuf = (*udpbatch.Conn).SetWriteBufferForce

// close closes the sockets; the mux closes its connections first.
func (s *shardSocket) close() { _ = s.mux.Close() }

// gatherAddrs lists the local addresses pion gathers host candidates on,
// with the engine's settings: interfaces that are up, loopback only with
// Config.Loopback, within Config.AllowedIPs; IPv6 but its deprecated
// IPv4-compatible and site-local addresses.
func (e *Engine) gatherAddrs(n *udpbatch.Net) ([]netip.Addr, error) {
	ifaces, err := n.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 && !e.cfg.Loopback {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range as {
			ip, ok := ifaceIP(a, ifc.Name)
			if !ok || ip.IsLoopback() && !e.cfg.Loopback || !gatherable(ip) ||
				!ipAllowed(e.cfg.AllowedIPs, ip.AsSlice()) {
				continue
			}
			out = append(out, ip)
		}
	}
	return out, nil
}

// ifaceIP is an interface's address, with the interface as its zone when
// it is an IPv6 link-local one.
func ifaceIP(a net.Addr, iface string) (netip.Addr, bool) {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPNet:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	default:
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, false
	}
	addr = addr.Unmap()
	if addr.Is6() && addr.IsLinkLocalUnicast() {
		addr = addr.WithZone(iface)
	}
	return addr, true
}

// gatherable leaves out what ICE must not offer (RFC 8445 5.1.1.1):
// IPv4-compatible IPv6 addresses and IPv6 site-local ones.
func gatherable(a netip.Addr) bool {
	if a.Is4() {
		return true
	}
	b := a.As16()
	compat := true
	for _, x := range b[:12] {
		compat = compat && x == 0
	}
	return !compat && !(b[0] == 0xfe && b[1]&0xc0 == 0xc0)
}

// listenUDP opens a socket on a, on a port of the engine's range (from a
// random one on) or any.
func (e *Engine) listenUDP(n *udpbatch.Net, a netip.Addr) (*udpbatch.Conn, error) {
	lo, hi := int(e.cfg.UDPPortMin), int(e.cfg.UDPPortMax)
	listen := func(port int) (*udpbatch.Conn, error) {
		c, err := n.ListenUDP("udp", &net.UDPAddr{IP: a.AsSlice(), Zone: a.Zone(), Port: port})
		if err != nil {
			return nil, err
		}
		return c.(*udpbatch.Conn), nil
	}
	if lo == 0 && hi == 0 {
		return listen(0)
	}
	lo, hi = max(lo, 1024), cmp.Or(hi, 0xffff)
	if lo > hi {
		return nil, fmt.Errorf("empty port range %d-%d", lo, hi)
	}
	start := lo + rand.IntN(hi-lo+1)
	for i := range hi - lo + 1 {
		c, err := listen(lo + (start-lo+i)%(hi-lo+1))
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err // not a taken port: the next one would fail alike
		}
	}
	return nil, fmt.Errorf("no free port in %d-%d: widen -ice-udp-ports (each writer shard, "+
		"presenter and relay takes a port of it per local address)", lo, hi)
}
