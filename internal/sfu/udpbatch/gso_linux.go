package udpbatch

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoSupported reports whether the kernel knows UDP_SEGMENT (Linux 4.18+).
// Whether the outgoing device can segment is only known at the first send.
func gsoSupported(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	if err := rc.Control(func(fd uintptr) {
		_, gerr := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		ok = gerr == nil
	}); err != nil {
		return false
	}
	return ok
}

// newSegmentOOB returns a control message buffer that carries UDP_SEGMENT.
func newSegmentOOB() []byte {
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	return oob
}

// sendSegments sends b as datagrams of size bytes (the last may be shorter)
// in one system call.
func (c *Conn) sendSegments(b []byte, size int, to netip.AddrPort) error {
	binary.NativeEndian.PutUint16(c.oob[unix.CmsgLen(0):], uint16(size))
	_, _, err := c.UDPConn.WriteMsgUDPAddrPort(b, c.oob, to)
	return err
}

// gsoRefused tells an error that means "no GSO here" (EIO: the device cannot
// checksum or segment; EINVAL, ENOPROTOOPT, EOPNOTSUPP: the kernel does not
// take the option or this size) from an ordinary send error.
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP)
}
