//go:build !linux

package loadtest

import "net"

// enableGRO: UDP_GRO is Linux's; elsewhere every read is one datagram.
func enableGRO(*net.UDPConn) bool { return false }

func groSegment([]byte) int { return 0 }
