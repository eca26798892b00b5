package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"time"
)

// Network is how viewers behind restrictive networks reach the media: ICE
// over TCP, and the embedded TURN server (docs/network.md).
type Network struct {
	// ICETCPPort, when set, offers passive ICE-TCP candidates on this one
	// TCP port beside UDP (0: off).
	ICETCPPort int

	// TURNPort serves TURN over UDP and TCP (0: off); TURNTLSPort, TURN over
	// TLS with the HTTPS certificate (0: off).
	TURNPort, TURNTLSPort int
	// TURNSecret signs the short-lived credentials handed to clients (the
	// TURN REST-API scheme).
	TURNSecret string
	// TURNCredentialTTL is how long handed-out credentials stay valid.
	TURNCredentialTTL time.Duration
	// TURNHost is the host put in the TURN URLs handed out; empty: the
	// host the client reached onair by.
	TURNHost string
	// TURNRelayIP is the local address relays are opened on; empty: the
	// first address ICE gathers on.
	TURNRelayIP string
	// TURNAllowPrivatePeers lets the relay reach this node's media
	// addresses in loopback and private ranges (LAN deployments, tests).
	TURNAllowPrivatePeers bool
	// TURNMaxAllocationsPerUser caps the relays one credential holds at once.
	TURNMaxAllocationsPerUser int
	// TURNRealm is the realm of the TURN server's authentication.
	TURNRealm string
}

// minTURNSecret is the shortest -turn-secret accepted: the HMAC key of every
// credential.
const minTURNSecret = 16

func (n *Network) register(fs *flag.FlagSet) {
	fs.IntVar(&n.ICETCPPort, "ice-tcp-port", 0, "also offer ICE candidates over TCP on this one port, for viewers whose UDP is blocked (0: off)")
	fs.IntVar(&n.TURNPort, "turn-port", 0, "serve the embedded TURN server on this UDP and TCP port, e.g. 3478 (0: off; needs -turn-secret)")
	fs.IntVar(&n.TURNTLSPort, "turn-tls-port", 0, "serve TURN over TLS on this TCP port with the HTTPS certificate, e.g. 443 or 5349 (0: off; needs -turn-secret and TLS)")
	fs.StringVar(&n.TURNSecret, "turn-secret", "", "secret that signs the short-lived TURN credentials handed to clients, at least 16 characters (prefer ONAIR_TURN_SECRET)")
	fs.DurationVar(&n.TURNCredentialTTL, "turn-credential-ttl", 24*time.Hour, "how long handed-out TURN credentials stay valid; a relay ends at most 10 minutes after its credential expires")
	fs.StringVar(&n.TURNHost, "turn-host", "", "host name or IP put in the TURN URLs handed out (default: the host the client reached onair by)")
	fs.StringVar(&n.TURNRelayIP, "turn-relay-ip", "", "local IP the TURN server opens relays on (default: the first address ICE gathers on)")
	fs.BoolVar(&n.TURNAllowPrivatePeers, "turn-allow-private-peers", false, "let the TURN relay reach this node's media addresses in loopback and private ranges (LAN deployments and tests)")
	fs.IntVar(&n.TURNMaxAllocationsPerUser, "turn-max-allocations-per-user", 10, "relays one TURN credential may hold at once")
	fs.StringVar(&n.TURNRealm, "turn-realm", "onair", "realm of the TURN server's authentication")
}

// TURN reports whether the embedded TURN server runs.
func (n Network) TURN() bool { return n.TURNPort > 0 || n.TURNTLSPort > 0 }

// checkNetwork rejects network settings that cannot work, saying what to do.
func (c Config) checkNetwork() error {
	n := c.Network
	for name, p := range map[string]int{"-ice-tcp-port": n.ICETCPPort, "-turn-port": n.TURNPort, "-turn-tls-port": n.TURNTLSPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("%s: %d is not a port (1-65535, or 0: off)", name, p)
		}
	}
	if n.TURNRelayIP != "" {
		if _, err := netip.ParseAddr(n.TURNRelayIP); err != nil {
			return fmt.Errorf("-turn-relay-ip: %q is not an IP address", n.TURNRelayIP)
		}
	}
	if !n.TURN() {
		return nil
	}
	switch {
	case n.TURNPort > 0 && n.TURNPort == n.TURNTLSPort:
		return errors.New("-turn-port and -turn-tls-port must differ")
	case n.ICETCPPort > 0 && (n.ICETCPPort == n.TURNPort || n.ICETCPPort == n.TURNTLSPort):
		return errors.New("-ice-tcp-port must differ from -turn-port and -turn-tls-port")
	case n.TURNPort > 0 && (n.TURNPort == c.UDPMuxPort || (c.UDPPortMin > 0 && n.TURNPort >= int(c.UDPPortMin) && n.TURNPort <= int(c.UDPPortMax))):
		return errors.New("-turn-port must not be a media port (-ice-udp-mux-port, -ice-udp-ports)")
	case len(n.TURNSecret) < minTURNSecret:
		return fmt.Errorf("the TURN server needs -turn-secret (ONAIR_TURN_SECRET) of at least %d characters: it signs the credentials handed to clients", minTURNSecret)
	case n.TURNCredentialTTL < time.Minute:
		return errors.New("-turn-credential-ttl must be at least 1m")
	case n.TURNMaxAllocationsPerUser < 1:
		return errors.New("-turn-max-allocations-per-user must be at least 1")
	case c.UDPMuxPort == 0 && c.UDPPortMin == 0:
		return errors.New("the TURN server relays only to this node's media ports, so it needs them known: set -ice-udp-mux-port (or -ice-udp-ports)")
	case n.TURNTLSPort > 0 && !c.TLS():
		return errors.New("-turn-tls-port serves the HTTPS certificate: it needs -tls-cert and -tls-key (or -tls-self-signed)")
	}
	return nil
}

// MediaListenHost is the address media ports listen on: the one address
// -ice-allowed-ips names, if it names exactly one, else every address.
func (c Config) MediaListenHost() string {
	if len(c.ICEAllowedIPs) == 1 && c.ICEAllowedIPs[0].IsSingleIP() {
		return c.ICEAllowedIPs[0].Addr().String()
	}
	return ""
}
