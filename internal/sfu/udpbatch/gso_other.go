//go:build !linux

package udpbatch

import (
	"errors"
	"net"
	"net/netip"
)

// Off Linux there is no UDP GSO: Begin does nothing and every write is sent
// at once.
func gsoSupported(*net.UDPConn) bool { return false }

func newSegmentOOB() []byte { return nil }

var errNoGSO = errors.New("udpbatch: no UDP GSO on this system")

func (c *Conn) sendSegments([]byte, int, netip.AddrPort) error { return errNoGSO }

func gsoRefused(error) bool { return true }
