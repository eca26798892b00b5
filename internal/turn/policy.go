package turn

import (
	"errors"
	"net"
	"net/netip"
	"strconv"

	"github.com/pion/turn/v5"
)

// policy decides where relays may send: only to this node's own media
// addresses (MediaIPs, or the PublicIPs advertised for them), only to its
// media ports, and only to loopback or private addresses if allowed. So
// the server is never an open relay that would let anyone reach other
// hosts, or services of this host, through it.
type policy struct {
	cfg    *Config
	refuse func(reason string)
}

// permit reports whether relays may reach ip, and if not, why.
func (p *policy) permit(ip netip.Addr) (bool, string) {
	ip = ip.Unmap()
	if !contains(p.cfg.MediaIPs, ip) && !contains(p.cfg.PublicIPs, ip) {
		return false, RefusedPeer
	}
	if !p.cfg.AllowPrivate && !isPublic(ip) {
		return false, RefusedPrivate
	}
	return true, ""
}

// permission is pion's PermissionHandler, for CreatePermission and
// ChannelBind requests.
func (p *policy) permission(client net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		p.refuse(RefusedPeer)
		return false
	}
	ok, why := p.permit(ip)
	if !ok {
		p.refuse(why)
	}
	return ok
}

// destination is where a packet a client relays to "to" goes, or false if
// it must be dropped: a media port of this node, reached on RelayIP when
// the client named a public address (the node's own public address need
// not be reachable from inside it).
func (p *policy) destination(to net.Addr) (net.Addr, bool) {
	ua, ok := to.(*net.UDPAddr)
	if !ok {
		return nil, false
	}
	ap := ua.AddrPort()
	ip := ap.Addr().Unmap()
	if ok, why := p.permit(ip); !ok {
		p.refuse(why)
		return nil, false
	}
	if p.cfg.MediaPort == nil || !p.cfg.MediaPort(int(ap.Port())) {
		p.refuse(RefusedPort)
		return nil, false
	}
	if contains(p.cfg.PublicIPs, ip) && !contains(p.cfg.MediaIPs, ip) {
		ip = p.cfg.RelayIP
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, ap.Port())), true
}

// source is the address a packet from the media engine appears to come
// from: its public address when it advertises one, as the client knows it.
func (p *policy) source(from net.Addr) net.Addr {
	ua, ok := from.(*net.UDPAddr)
	if !ok || len(p.cfg.PublicIPs) == 0 {
		return from
	}
	ap := ua.AddrPort()
	ip := ap.Addr().Unmap()
	if !contains(p.cfg.MediaIPs, ip) || contains(p.cfg.PublicIPs, ip) {
		return from
	}
	for _, pub := range p.cfg.PublicIPs {
		if pub.Is4() == ip.Is4() {
			return net.UDPAddrFromAddrPort(netip.AddrPortFrom(pub, ap.Port()))
		}
	}
	return from
}

func contains(list []netip.Addr, ip netip.Addr) bool {
	for _, a := range list {
		if a.Unmap() == ip {
			return true
		}
	}
	return false
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// isPublic reports whether ip is a global unicast address outside the
// private, loopback, link-local and shared ranges.
func isPublic(ip netip.Addr) bool {
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip)
}

var errTCPRelay = errors.New("turn: relays are UDP only")

// relayGenerator opens each relay on RelayIP, wrapped so that it sends
// only where the policy allows. It refuses TCP relays (RFC 6062).
type relayGenerator struct {
	pol *policy
}

func (g *relayGenerator) Validate() error { return nil }

func (g *relayGenerator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	ip := g.pol.cfg.RelayIP
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	if c.Network != "" && c.Network != network {
		return nil, nil, errors.New("turn: relays are " + network + " only")
	}
	conn, err := net.ListenPacket(network, net.JoinHostPort(ip.String(), strconv.Itoa(c.RequestedPort)))
	if err != nil {
		return nil, nil, err
	}
	return &relayConn{PacketConn: conn, pol: g.pol}, conn.LocalAddr(), nil
}

func (g *relayGenerator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	g.pol.refuse(RefusedTCPRelay)
	return nil, nil, errTCPRelay
}

func (g *relayGenerator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	g.pol.refuse(RefusedTCPRelay)
	return nil, errTCPRelay
}

// relayConn is a relay's socket: it drops what the policy refuses, and
// shows the media engine by the address its clients know.
type relayConn struct {
	net.PacketConn
	pol *policy
}

func (c *relayConn) WriteTo(b []byte, to net.Addr) (int, error) {
	dst, ok := c.pol.destination(to)
	if !ok {
		return len(b), nil // dropped, as a network would: the client learns nothing
	}
	return c.PacketConn.WriteTo(b, dst)
}

func (c *relayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		from = c.pol.source(from)
	}
	return n, from, err
}
