package sfu

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

// lockedBuffer is a log's output that tests read while the engine writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// When the kernel grants a writer's socket less send buffer than asked
// (net.core.wmem_max caps it), the operator is told once, with the sysctl
// to raise: otherwise a burst to many viewers drops sooner, with no hint.
func TestShardSocketWarnsOfASmallSendBuffer(t *testing.T) {
	limit := wmemMax(t)
	// A process with CAP_NET_ADMIN gets what it asks past the cap: the
	// warning is for one without it.
	force := forceSndBuf
	forceSndBuf = func(*udpbatch.Conn, int) error { return syscall.EPERM }
	defer func() { forceSndBuf = force }()
	eng, out := loggingEngine(t)
	conn := func() *udpbatch.Conn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		return udpbatch.Wrap(c, udpbatch.NewBuffers())
	}
	small := conn()
	defer func() { _ = small.Close() }()
	eng.setSndBuf(small, limit/4) // within the limit: nothing to say
	if s := out.String(); s != "" {
		t.Errorf("logged for a send buffer within net.core.wmem_max: %s", s)
	}
	for range 2 {
		c := conn()
		eng.setSndBuf(c, 4*limit)
		_ = c.Close()
	}
	s := out.String()
	if strings.Count(s, "level=WARN") != 1 || !strings.Contains(s, "net.core.wmem_max") ||
		!strings.Contains(s, strconv.Itoa(4*limit)) {
		t.Errorf("want one warning naming net.core.wmem_max and the size asked (%d), got: %q", 4*limit, s)
	}
}

// With CAP_NET_ADMIN (root here), a writer's socket gets the send buffer
// it asks for past net.core.wmem_max, and nothing is logged.
func TestShardSocketForcesItsSendBuffer(t *testing.T) {
	limit := wmemMax(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	conn := udpbatch.Wrap(c, udpbatch.NewBuffers())
	defer func() { _ = conn.Close() }()
	if err := conn.SetWriteBufferForce(2 * limit); err != nil {
		t.Skipf("no CAP_NET_ADMIN here (%v): the other test covers this case", err)
	}
	eng, out := loggingEngine(t)
	eng.setSndBuf(conn, 4*limit)
	if got, err := conn.WriteBufferSize(); err != nil || got < 4*limit {
		t.Errorf("send buffer %d (%v), want at least %d past the cap %d", got, err, 4*limit, limit)
	}
	if s := out.String(); s != "" {
		t.Errorf("logged with the buffer granted: %s", s)
	}
}

// wmemMax is net.core.wmem_max, the send buffer a process may ask for
// without CAP_NET_ADMIN.
func wmemMax(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		t.Skip("no net.core.wmem_max here")
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return limit
}

// loggingEngine is an engine whose log the test reads.
func loggingEngine(t *testing.T) (*Engine, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	eng, err := New(Config{Logger: slog.New(slog.NewTextHandler(out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng, out
}
