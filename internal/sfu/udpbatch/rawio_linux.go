package udpbatch

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawIO makes a Conn's reads and unbatched writes as raw system calls
// through the socket's poller, like rawSender: a read or write that would
// block waits on the poller as the net package's would, but the calls
// themselves skip the scheduler's system-call bookkeeping. That
// bookkeeping wakes the runtime's monitor thread (sysmon) whenever a
// goroutine enters a system call while the process was idle, and sysmon
// then polls every 20 µs for a millisecond or more: with a datagram or two
// arriving after each idle moment, that polling was about 7% of a busy
// forwarding server's CPU.
type rawIO struct {
	rc syscall.RawConn

	rmu   sync.Mutex // one read at a time
	rbuf  []byte
	rsa   unix.RawSockaddrAny
	rn    int
	rerr  unix.Errno
	read  func(fd uintptr) bool
	wmu   sync.Mutex
	wbuf  []byte
	wsa4  unix.RawSockaddrInet4
	wsa6  unix.RawSockaddrInet6
	wn    int
	werr  unix.Errno
	write func(fd uintptr) bool
	v6    bool
}

// initRaw sets up the Conn's raw calls (rawIO, and rawSender's batched
// sends where the kernel takes UDP_SEGMENT), all on one RawConn of the
// socket, looked up once, as is the socket's address family.
func (c *Conn) initRaw() {
	rc, err := c.UDPConn.SyscallConn()
	if err != nil {
		return
	}
	var sa unix.Sockaddr
	if cerr := rc.Control(func(fd uintptr) { sa, err = unix.Getsockname(int(fd)) }); cerr != nil || err != nil {
		return
	}
	_, v6 := sa.(*unix.SockaddrInet6)
	c.rc = rc
	r := &rawIO{rc: rc, v6: v6}
	r.read, r.write = r.recvfrom, r.sendto
	c.raw = r
	if gsoSupported(c.UDPConn) && unix.CmsgSpace(2) == oobSpace {
		s := &rawSender{rc: rc, v6: v6}
		s.write = s.sendmmsg
		c.gso, c.sendRuns = true, s.sendRuns
	}
}

// putSockaddr writes to into sa4 or sa6, as the socket's family (v6)
// wants, and returns the one written and its length, as a system call
// takes them; errFamily for an IPv6 destination on an IPv4 socket.
func putSockaddr(v6 bool, to netip.AddrPort, sa4 *unix.RawSockaddrInet4, sa6 *unix.RawSockaddrInet6) (unsafe.Pointer, uintptr, error) {
	port := to.Port()
	port = port<<8 | port>>8 // network byte order
	if v6 {
		*sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port, Addr: to.Addr().As16()}
		return unsafe.Pointer(sa6), unix.SizeofSockaddrInet6, nil
	}
	a := to.Addr().Unmap()
	if !a.Is4() {
		return nil, 0, errFamily
	}
	*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: port, Addr: a.As4()}
	return unsafe.Pointer(sa4), unix.SizeofSockaddrInet4, nil
}

func (r *rawIO) recvfrom(fd uintptr) bool {
	l := uint32(unix.SizeofSockaddrAny)
	var p unsafe.Pointer
	if len(r.rbuf) > 0 {
		p = unsafe.Pointer(&r.rbuf[0])
	}
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(p), uintptr(len(r.rbuf)), 0,
		uintptr(unsafe.Pointer(&r.rsa)), uintptr(unsafe.Pointer(&l)))
	for e == unix.EINTR { // interrupted: the datagram may be there already
		l = uint32(unix.SizeofSockaddrAny)
		n, _, e = unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(p), uintptr(len(r.rbuf)), 0,
			uintptr(unsafe.Pointer(&r.rsa)), uintptr(unsafe.Pointer(&l)))
	}
	if e == unix.EAGAIN {
		return false // wait on the poller
	}
	r.rn, r.rerr = int(n), e
	return true
}

// readFrom reads a datagram and its sender's address.
func (r *rawIO) readFrom(b []byte) (int, netip.AddrPort, error) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	r.rbuf, r.rn, r.rerr = b, 0, 0
	err := r.rc.Read(r.read)
	r.rbuf = nil
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if r.rerr != 0 {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvfrom", r.rerr)}
	}
	var from netip.AddrPort
	switch r.rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		from = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		from = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return r.rn, from, nil
}

func (r *rawIO) sendto(fd uintptr) bool {
	var p unsafe.Pointer
	if len(r.wbuf) > 0 {
		p = unsafe.Pointer(&r.wbuf[0])
	}
	sa, l := uintptr(unsafe.Pointer(&r.wsa4)), uintptr(unix.SizeofSockaddrInet4)
	if r.v6 {
		sa, l = uintptr(unsafe.Pointer(&r.wsa6)), unix.SizeofSockaddrInet6
	}
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(p), uintptr(len(r.wbuf)), 0, sa, l)
	for e == unix.EINTR {
		n, _, e = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(p), uintptr(len(r.wbuf)), 0, sa, l)
	}
	if e == unix.EAGAIN {
		return false // the send buffer is full: wait on the poller, as the net package does
	}
	r.wn, r.werr = int(n), e
	return true
}

// writeTo sends b to to at once, waiting on the poller if the socket's
// buffer is full, as the net package's write does. Not for zoned
// addresses (the caller uses the net package for those).
func (r *rawIO) writeTo(b []byte, to netip.AddrPort) (int, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if _, _, err := putSockaddr(r.v6, to, &r.wsa4, &r.wsa6); err != nil {
		return 0, err
	}
	r.wbuf, r.wn, r.werr = b, 0, 0
	err := r.rc.Write(r.write)
	r.wbuf = nil
	if err != nil {
		return 0, err
	}
	if r.werr != 0 {
		return 0, &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendto", r.werr)}
	}
	return r.wn, nil
}

// waitWritable waits up to d for the socket to take more (POLLOUT), on
// the calling thread: a flush holds the Conn's lock, and the poller's wait
// would not be bounded by d. It reports whether the socket can take more.
func (c *Conn) waitWritable(d time.Duration) bool {
	rc := c.rc
	if rc == nil {
		return false
	}
	ms := max(int((d+time.Millisecond-1)/time.Millisecond), 1)
	ok := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		for {
			n, err := unix.Poll(fds, ms)
			if err == unix.EINTR {
				continue
			}
			ok = err == nil && n > 0 && fds[0].Revents&unix.POLLOUT != 0
			return
		}
	})
	return ok
}

// SetWriteBufferForce asks for a send buffer of size bytes past the
// system's cap (net.core.wmem_max), as SO_SNDBUFFORCE lets a process with
// CAP_NET_ADMIN; elsewhere it returns the error and changes nothing.
func (c *Conn) SetWriteBufferForce(size int) error {
	rc, err := c.UDPConn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size)
	}); err != nil {
		return err
	}
	return serr
}

// WriteBufferSize reports the send buffer the kernel granted the socket:
// half what SO_SNDBUF reads, as Linux doubles the size asked for its own
// bookkeeping.
func (c *Conn) WriteBufferSize() (int, error) {
	rc, err := c.UDPConn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var serr error
	if err := rc.Control(func(fd uintptr) { n, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF) }); err != nil {
		return 0, err
	}
	return n / 2, serr
}
