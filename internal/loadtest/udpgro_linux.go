package loadtest

import (
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"
)

// enableGRO turns UDP_GRO on for conn and tells whether the kernel took it
// (Linux 5.0 and later).
func enableGRO(conn *net.UDPConn) bool {
	return setsockoptInt(conn, unix.SOL_UDP, unix.UDP_GRO, 1) == nil
}

// groSegment returns the segment size that a UDP_GRO control message in
// oob gives, or 0 if there is none (a single datagram).
func groSegment(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_UDP && m.Header.Type == unix.UDP_GRO && len(m.Data) >= 4 {
			// A native-endian int.
			return int(int32(binary.NativeEndian.Uint32(m.Data)))
		}
	}
	return 0
}
