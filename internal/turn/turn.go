// Package turn is onair's embedded TURN server (pion/turn): it relays the
// media of viewers that can reach this node only through a relay (UDP
// blocked, or only port 443 open), and to nothing else. Clients get
// short-lived credentials (the TURN REST-API scheme, credentials.go); the
// relay reaches only this node's own media addresses and ports, and each
// credential holds a capped number of relays (policy.go).
package turn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/turn/v5"
)

// Config is what the TURN server needs to know.
type Config struct {
	// ListenHost is the address the ports listen on ("": every address).
	ListenHost string
	// Port serves TURN over UDP and TCP (0: neither); TLSPort, TURN over TLS
	// with TLS's certificate (0: off).
	Port, TLSPort int
	TLS           *tls.Config

	// Secret signs credentials; TTL is how long they stay valid.
	Secret string
	TTL    time.Duration
	Realm  string

	// RelayIP is the local address relays are opened on: one the media
	// engine listens on.
	RelayIP netip.Addr
	// MediaIPs are this node's local media addresses, and PublicIPs those
	// it advertises in their place (NAT 1:1): the only peers relays reach.
	MediaIPs, PublicIPs []netip.Addr
	// MediaPort reports whether a UDP port is one of the media engine's:
	// the only ports relays reach.
	MediaPort func(port int) bool
	// AllowPrivate lets relays reach those addresses in loopback and
	// private ranges.
	AllowPrivate bool
	// MaxPerUser caps the allocations one credential holds at once.
	MaxPerUser int

	Logger *slog.Logger
	// OnAllocation and OnRefused, if set, count allocations made and
	// requests or packets refused, by reason (the Refused* constants).
	// They must not block.
	OnAllocation func()
	OnRefused    func(reason string)
}

// Why the server refuses (Config.OnRefused).
const (
	RefusedAuth     = "auth"      // wrong password, or a username not of the REST-API form
	RefusedExpired  = "expired"   // the credential's expiry has passed
	RefusedQuota    = "quota"     // the credential holds MaxPerUser allocations already
	RefusedPeer     = "peer"      // a permission for an address that is not this node's
	RefusedPrivate  = "private"   // a permission for this node's loopback or private address, not allowed
	RefusedPort     = "port"      // a packet to a port that is not a media port (dropped)
	RefusedTCPRelay = "tcp_relay" // a TCP allocation (RFC 6062): relays are UDP only
)

// RefusalReasons lists every refusal reason, for metrics.
var RefusalReasons = []string{RefusedAuth, RefusedExpired, RefusedQuota, RefusedPeer, RefusedPrivate,
	RefusedPort, RefusedTCPRelay}

// Server is a running TURN server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	srv    *turn.Server
	pol    *policy
	conns  *connSet
	closed sync.Once
	err    error

	mu     sync.Mutex
	byUser map[string]int // allocations held, by credential user
	total  int
}

// New listens on the configured ports and serves until Close.
func New(cfg Config) (*Server, error) {
	if cfg.Port <= 0 && cfg.TLSPort <= 0 {
		return nil, errors.New("turn: no port to serve")
	}
	if cfg.TLSPort > 0 && cfg.TLS == nil {
		return nil, errors.New("turn: TURN over TLS needs a certificate")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TLS != nil {
		// The HTTPS configuration offers h2 and http/1.1: a TURN client that
		// asks for "stun.turn" (RFC 7443) would be refused for want of a
		// common protocol. TURN needs none.
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.NextProtos = nil
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "turn"), conns: &connSet{m: map[net.Conn]struct{}{}},
		byUser: map[string]int{}}
	s.pol = &policy{cfg: &s.cfg, refuse: s.refused}
	sc, err := s.listen()
	if err != nil {
		return nil, err
	}
	if s.srv, err = turn.NewServer(sc); err != nil {
		closeAll(sc)
		return nil, fmt.Errorf("turn: %w", err)
	}
	s.log.Info("TURN server listening", "port", cfg.Port, "tlsPort", cfg.TLSPort, "relayIP", cfg.RelayIP.String(),
		"maxPerUser", cfg.MaxPerUser, "allowPrivatePeers", cfg.AllowPrivate)
	return s, nil
}

// listen opens the ports and builds pion's configuration around them.
func (s *Server) listen() (turn.ServerConfig, error) {
	sc := turn.ServerConfig{
		Realm: s.cfg.Realm, AuthHandler: s.authenticate, QuotaHandler: s.quota,
		LoggerFactory: pionLogs{s.log}, EventHandler: s.events(),
	}
	gen := &relayGenerator{pol: s.pol}
	fail := func(err error) (turn.ServerConfig, error) {
		closeAll(sc)
		return turn.ServerConfig{}, err
	}
	if s.cfg.Port > 0 {
		addr := net.JoinHostPort(s.cfg.ListenHost, strconv.Itoa(s.cfg.Port))
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fail(fmt.Errorf("turn: listen on UDP %s: %w", addr, err))
		}
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{PacketConn: pc,
			RelayAddressGenerator: gen, PermissionHandler: s.pol.permission})
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(fmt.Errorf("turn: listen on TCP %s: %w", addr, err))
		}
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{Listener: s.conns.track(l),
			RelayAddressGenerator: gen, PermissionHandler: s.pol.permission})
	}
	if s.cfg.TLSPort > 0 {
		addr := net.JoinHostPort(s.cfg.ListenHost, strconv.Itoa(s.cfg.TLSPort))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(fmt.Errorf("turn: listen on TCP %s (TLS): %w", addr, err))
		}
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener:              tls.NewListener(s.conns.track(l), s.cfg.TLS),
			RelayAddressGenerator: gen, PermissionHandler: s.pol.permission})
	}
	return sc, nil
}

func closeAll(sc turn.ServerConfig) {
	for _, c := range sc.PacketConnConfigs {
		_ = c.PacketConn.Close()
	}
	for _, c := range sc.ListenerConfigs {
		_ = c.Listener.Close()
	}
}

// Close stops listening and ends every connection and relay.
func (s *Server) Close() error {
	s.closed.Do(func() {
		s.err = s.srv.Close()
		s.conns.closeAll()
		s.log.Info("TURN server stopped")
	})
	return s.err
}

// Allocations is the number of relays held now.
func (s *Server) Allocations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *Server) refused(reason string) {
	if s.cfg.OnRefused != nil {
		s.cfg.OnRefused(reason)
	}
}

// quota admits an allocation while its user holds fewer than MaxPerUser.
func (s *Server) quota(user, _ string, src net.Addr) bool {
	s.mu.Lock()
	ok := s.cfg.MaxPerUser <= 0 || s.byUser[user] < s.cfg.MaxPerUser
	s.mu.Unlock()
	if !ok {
		s.log.Info("TURN allocation refused: quota reached", "remote", src.String(), "max", s.cfg.MaxPerUser)
		s.refused(RefusedQuota)
	}
	return ok
}

// events keeps the count of allocations by user.
func (s *Server) events() turn.EventHandler {
	return turn.EventHandler{
		OnAllocationCreated: func(src, _ net.Addr, protocol, user, _ string, relay net.Addr, _ int) {
			s.mu.Lock()
			s.byUser[user]++
			s.total++
			s.mu.Unlock()
			if s.cfg.OnAllocation != nil {
				s.cfg.OnAllocation()
			}
			s.log.Debug("TURN allocation", "remote", src.String(), "protocol", protocol, "relay", relay.String())
		},
		OnAllocationDeleted: func(src, _ net.Addr, _, user, _ string) {
			s.mu.Lock()
			if s.byUser[user]--; s.byUser[user] <= 0 {
				delete(s.byUser, user)
			}
			s.total--
			s.mu.Unlock()
			s.log.Debug("TURN allocation ended", "remote", src.String())
		},
		OnAuth: func(src, _ net.Addr, _, _, _ string, method string, ok bool) {
			if !ok {
				s.log.Debug("TURN request refused: wrong credential", "remote", src.String(), "method", method)
				s.refused(RefusedAuth)
			}
		},
	}
}

// connSet tracks the connections accepted on TCP and TLS, which pion's
// server leaves open when it closes: Close ends them.
type connSet struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

func (cs *connSet) track(l net.Listener) net.Listener { return &trackedListener{Listener: l, set: cs} }

func (cs *connSet) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	cs.m[c] = struct{}{}
	return true
}

func (cs *connSet) remove(c net.Conn) {
	cs.mu.Lock()
	delete(cs.m, c)
	cs.mu.Unlock()
}

func (cs *connSet) closeAll() {
	cs.mu.Lock()
	cs.closed = true
	conns := cs.m
	cs.m = map[net.Conn]struct{}{}
	cs.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

type trackedListener struct {
	net.Listener
	set *connSet
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, set: l.set}
	if !l.set.add(tc) {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	return tc, nil
}

type trackedConn struct {
	net.Conn
	set *connSet
}

func (c *trackedConn) Close() error {
	c.set.remove(c)
	return c.Conn.Close()
}
