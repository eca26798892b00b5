package udpbatch

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"
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

// gsoRefused tells an error that means "no GSO here" (EIO: the device cannot
// checksum or segment; EINVAL, ENOPROTOOPT, EOPNOTSUPP: the kernel does not
// take the option or this size) from an ordinary send error.
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP)
}

// rawSender makes a Conn's batched sends: one sendmmsg of prepared message
// headers, one per run, as a raw system call. The socket is non-blocking, so
// the call never sleeps; a raw call spares the scheduler's bookkeeping of a
// blocking one (and the hand-off of the processor, which a long GSO send
// would otherwise invite). EAGAIN (the socket's send buffer is full) does
// not wait for it to drain, as the net package would: the batch's writer
// may serve other peers meanwhile; the rest of the batch is dropped
// (wouldBlock). Used under Conn.mu.
type rawSender struct {
	rc syscall.RawConn
	v6 bool // the socket is AF_INET6

	m     *msgScratch // of the call in progress
	count int         // messages to send
	sent  int
	errno unix.Errno
	write func(fd uintptr) bool // s.sendmmsg, bound once
}

// msgScratch is the memory of one sendmmsg: a batch carries it, so that it
// is only held while a batch is.
type msgScratch struct {
	msgs []mmsghdr
	iovs []unix.Iovec
	sa4  []unix.RawSockaddrInet4
	sa6  []unix.RawSockaddrInet6
	oobs [][oobSpace]byte // UDP_SEGMENT control messages
}

// newMsgScratch makes room for a sendmmsg of up to runs messages.
func newMsgScratch(runs int) msgScratch {
	return msgScratch{msgs: make([]mmsghdr, runs), iovs: make([]unix.Iovec, runs),
		sa4: make([]unix.RawSockaddrInet4, runs), sa6: make([]unix.RawSockaddrInet6, runs),
		oobs: make([][oobSpace]byte, runs)}
}

// mmsghdr is struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// oobSpace is the room of a control message of one uint16: CMSG_SPACE(2).
const oobSpace = (unix.SizeofCmsghdr + 2 + 7) &^ 7

// sendRuns sends the first runs of b with one sendmmsg: it returns how many
// were sent and, if none was, the error of the first.
func (s *rawSender) sendRuns(b *batch, runs []run) (int, error) {
	m := &b.msgs
	k := min(len(runs), len(m.msgs))
	for i := range k {
		r := &runs[i]
		h := &m.msgs[i].hdr
		sa, l, err := putSockaddr(s.v6, r.to, &m.sa4[i], &m.sa6[i])
		if err != nil {
			if i == 0 {
				return 0, err
			}
			k = i
			break
		}
		h.Name, h.Namelen = (*byte)(sa), uint32(l)
		m.iovs[i].Base = &b.buf[r.off]
		m.iovs[i].SetLen(r.end - r.off)
		h.Iov = &m.iovs[i]
		h.SetIovlen(1)
		if r.n > 1 {
			c := (*unix.Cmsghdr)(unsafe.Pointer(&m.oobs[i][0]))
			c.Level, c.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			c.SetLen(unix.CmsgLen(2))
			binary.NativeEndian.PutUint16(m.oobs[i][unix.CmsgLen(0):], uint16(r.size))
			h.Control = &m.oobs[i][0]
			h.SetControllen(oobSpace)
		} else {
			h.Control = nil
			h.SetControllen(0)
		}
	}
	s.m, s.count, s.sent, s.errno = m, k, 0, 0
	err := s.rc.Write(s.write)
	s.m = nil
	if err != nil {
		return 0, err
	}
	if s.errno != 0 {
		return 0, s.errno
	}
	return s.sent, nil
}

func (s *rawSender) sendmmsg(fd uintptr) bool {
	n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.m.msgs[0])), uintptr(s.count), 0, 0, 0)
	if e != 0 {
		n = 0
	}
	s.sent, s.errno = int(n), e
	return true
}

// wouldBlock tells the error of a send to a full socket.
func wouldBlock(err error) bool { return errors.Is(err, unix.EAGAIN) }

var errFamily = errors.New("udpbatch: IPv6 destination on an IPv4 socket")
