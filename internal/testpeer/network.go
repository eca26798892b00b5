package testpeer

import (
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
