package sfu

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// tcpMuxReadBuffer is how many packets the TCP mux holds per connection
// before its reader blocks.
const tcpMuxReadBuffer = 64

// listenICETCP serves passive ICE-TCP candidates on cfg.TCPMuxPort: every
// peer's TCP connections arrive on that one port and are told apart by
// their STUN username, as on a shared UDP port. The engine never dials out
// over TCP (no active candidates): a peer could otherwise make it connect
// anywhere.
func (e *Engine) listenICETCP(se *webrtc.SettingEngine) error {
	if e.cfg.TCPMuxPort <= 0 {
		return nil
	}
	addr := net.JoinHostPort(tcpListenHost(e.cfg.AllowedIPs), strconv.Itoa(e.cfg.TCPMuxPort))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sfu: listen on TCP port %d: %w", e.cfg.TCPMuxPort, err)
	}
	log := logging.NewDefaultLoggerFactory().NewLogger("ice-tcp")
	e.tcpMux = webrtc.NewICETCPMux(log, l, tcpMuxReadBuffer)
	se.SetICETCPMux(e.tcpMux)
	se.DisableActiveTCP(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6,
		webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
	e.log.Info("ICE over TCP", "addr", l.Addr().String())
	return nil
}

// tcpListenHost is the address the ICE-TCP port listens on: the one
// address AllowedIPs names, if it names exactly one, else every address
// (candidates are offered only on the allowed ones).
func tcpListenHost(allowed []netip.Prefix) string {
	if len(allowed) == 1 && allowed[0].IsSingleIP() {
		return allowed[0].Addr().String()
	}
	return ""
}

// closeICETCP stops listening on the ICE-TCP port.
func (e *Engine) closeICETCP() error {
	if e.tcpMux == nil {
		return nil
	}
	return e.tcpMux.Close()
}
