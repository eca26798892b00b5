package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/randid"
	"github.com/onair-live/onair/internal/turn"
)

// turnRelay is the embedded TURN server and the credentials it hands out;
// a nil *turnRelay is no TURN server, and hands out nothing.
type turnRelay struct {
	srv  *turn.Server
	host string // -turn-host
}

// newTURN starts the TURN server cfg asks for, or returns nil.
func newTURN(cfg config.Config, log *slog.Logger, tlsConf *tls.Config, obs *observers) (*turnRelay, error) {
	if !cfg.TURN() {
		return nil, nil
	}
	local, err := mediaIPs(cfg)
	if err != nil {
		return nil, err
	}
	tc := turn.Config{
		ListenHost: cfg.MediaListenHost(), Port: cfg.TURNPort, TLSPort: cfg.TURNTLSPort, TLS: tlsConf,
		Secret: cfg.TURNSecret, TTL: cfg.TURNCredentialTTL, Realm: cfg.TURNRealm,
		MediaIPs: local, AllowPrivate: cfg.TURNAllowPrivatePeers, MaxPerUser: cfg.TURNMaxAllocationsPerUser,
		MediaPort: func(p int) bool {
			if cfg.UDPMuxPort > 0 {
				return p == cfg.UDPMuxPort
			}
			return p >= int(cfg.UDPPortMin) && p <= int(cfg.UDPPortMax)
		},
		Logger: log,
	}
	for _, s := range cfg.PublicIPs {
		tc.PublicIPs = append(tc.PublicIPs, netip.MustParseAddr(s)) // checked by config
	}
	if tc.RelayIP, err = relayIP(cfg, local); err != nil {
		return nil, err
	}
	var srv *turn.Server
	if obs.metrics != nil {
		m := obs.metrics.TURN(turn.RefusalReasons, func() int {
			if srv == nil {
				return 0
			}
			return srv.Allocations()
		})
		tc.OnAllocation, tc.OnRefused = m.Allocated, m.Refused
	}
	if srv, err = turn.New(tc); err != nil {
		return nil, err
	}
	return &turnRelay{srv: srv, host: cfg.TURNHost}, nil
}

// mediaIPs are the local addresses the media engine gathers candidates on.
func mediaIPs(cfg config.Config) ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("TURN: list local addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		if (ip.IsLoopback() && !cfg.ICELoopback) || ip.IsLinkLocalUnicast() || !allowedIP(cfg.ICEAllowedIPs, ip) {
			continue
		}
		out = append(out, ip)
	}
	return out, nil
}

func allowedIP(allowed []netip.Prefix, ip netip.Addr) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, p := range allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// relayIP is -turn-relay-ip, or the first IPv4 media address (else the
// first one).
func relayIP(cfg config.Config, local []netip.Addr) (netip.Addr, error) {
	if cfg.TURNRelayIP != "" {
		return netip.MustParseAddr(cfg.TURNRelayIP), nil // checked by config
	}
	for _, ip := range local {
		if ip.Is4() {
			return ip, nil
		}
	}
	if len(local) > 0 {
		return local[0], nil
	}
	return netip.Addr{}, errors.New("TURN: no local address to relay from (see -ice-allowed-ips, or set -turn-relay-ip)")
}

// servers are the TURN URLs for r's client, with a credential of its own:
// on -turn-host, or the host the client reached onair by.
func (t *turnRelay) servers(r *http.Request) []media.ICEServer {
	if t == nil {
		return nil
	}
	host := t.host
	if host == "" {
		host = r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
	}
	return t.srv.ICEServers(host, newUser())
}

func (t *turnRelay) close() error {
	if t == nil {
		return nil
	}
	return t.srv.Close()
}

// newUser names the holder of one credential: each client that asks gets
// its own, whose allocations are capped.
func newUser() string { return randid.Hex(8) }
