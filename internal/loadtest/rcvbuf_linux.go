package loadtest

import (
	"net"

	"golang.org/x/sys/unix"
)

// setReadBuffer asks for size bytes of receive buffer: past
// net.core.rmem_max if the process may (CAP_NET_ADMIN), else up to it.
func setReadBuffer(conn *net.UDPConn, size int) {
	raw, err := conn.SyscallConn()
	if err == nil {
		var serr error
		if err = raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		}); err == nil && serr == nil {
			return
		}
	}
	_ = conn.SetReadBuffer(size)
}
