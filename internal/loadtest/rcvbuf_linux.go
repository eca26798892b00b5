package loadtest

import (
	"net"

	"golang.org/x/sys/unix"
)

// setReadBuffer asks for size bytes of receive buffer: past
// net.core.rmem_max if the process may (CAP_NET_ADMIN), else up to it.
func setReadBuffer(conn *net.UDPConn, size int) {
	if setsockoptInt(conn, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
		_ = conn.SetReadBuffer(size)
	}
}

// setsockoptInt sets an integer socket option on conn's socket.
func setsockoptInt(conn *net.UDPConn, level, opt, value int) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, value) }); err != nil {
		return err
	}
	return serr
}
