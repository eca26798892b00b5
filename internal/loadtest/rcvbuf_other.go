//go:build !linux

package loadtest

import "net"

// setReadBuffer asks for size bytes of receive buffer, as the system allows.
func setReadBuffer(conn *net.UDPConn, size int) { _ = conn.SetReadBuffer(size) }
