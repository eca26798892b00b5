//go:build !linux

package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// Off Linux there is no UDP GSO: Begin does nothing and every write is sent
// at once.
func gsoSupported(*net.UDPConn) bool { return false }

func gsoRefused(error) bool { return true }

func wouldBlock(error) bool { return false }

var errNoGSO = errors.New("udpbatch: no UDP GSO on this system")

type msgScratch struct{}

func newMsgScratch(int) msgScratch { return msgScratch{} }

// rawIO: off Linux, reads and writes are the net package's.
type rawIO struct{}

func (*Conn) initRaw() {}

func (*rawIO) readFrom([]byte) (int, netip.AddrPort, error) { return 0, netip.AddrPort{}, errNoGSO }

func (*rawIO) writeTo([]byte, netip.AddrPort) (int, error) { return 0, errNoGSO }

// WriteBufferSize is not known off Linux.
func (c *Conn) WriteBufferSize() (int, error) { return 0, errors.ErrUnsupported }

// waitWritable: off Linux, a full socket is not waited for.
func (*Conn) waitWritable(time.Duration) bool { return false }

// SetWriteBufferForce is Linux's.
func (*Conn) SetWriteBufferForce(int) error { return errors.ErrUnsupported }
