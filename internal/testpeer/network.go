package testpeer

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// Network is how a test peer may reach the server; the zero value is its
// own UDP socket on 127.0.0.1.
type Network struct {
	// TCPOnly gathers no UDP candidate at all: the peer reaches the server
	// only by opening TCP connections to its passive ICE-TCP candidates, as
	// behind a firewall that drops UDP.
	TCPOnly bool
	// Relay, when set, are the TURN servers the peer must go through: its
	// ICE transport policy is relay, so that it neither offers nor uses any
	// other candidate.
	Relay []webrtc.ICEServer
	// TURNTLS, if set, verifies TURN servers over TLS with its roots;
	// Relay must then hold turns: URLs only.
	TURNTLS *tls.Config
}

// configure sets the network types and sockets of n on se; mux is the
// peer's UDP socket, used unless n excludes UDP.
func (n Network) configure(se *webrtc.SettingEngine, mux ice.UDPMux) {
	switch {
	case n.TCPOnly:
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	case len(n.Relay) > 0:
		// TCP too, for TURN over TCP and TLS; relayed addresses are UDP.
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
		se.SetICEUDPMux(mux)
		if n.TURNTLS != nil {
			se.SetICEProxyDialer(tlsDialer{n.TURNTLS})
		}
	default:
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetICEUDPMux(mux)
	}
}

func (n Network) configuration() webrtc.Configuration {
	if len(n.Relay) == 0 {
		return webrtc.Configuration{}
	}
	return webrtc.Configuration{ICEServers: n.Relay, ICETransportPolicy: webrtc.ICETransportPolicyRelay}
}

// tlsDialer connects to TURN servers over TLS, verifying them with its
// configuration's roots (pion verifies TURN over TLS only against the
// system's roots, which a test's certificate is not among). pion uses it
// for every TURN server over TCP, so a peer given one must be given only
// turns: URLs.
type tlsDialer struct{ conf *tls.Config }

func (d tlsDialer) Dial(network, addr string) (net.Conn, error) {
	conf := d.conf.Clone()
	if conf.ServerName == "" {
		conf.ServerName, _, _ = net.SplitHostPort(addr)
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, network, addr, conf)
}

// NewWHIPClientTLS is NewWHIPClient for a server on HTTPS whose
// certificate conf's roots trust.
func NewWHIPClientTLS(origin string, conf *tls.Config) *WHIPClient {
	return &WHIPClient{origin: origin, http: &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: conf},
		Timeout:   30 * time.Second,
	}}
}
