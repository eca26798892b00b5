package turn_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"

	"github.com/onair-live/onair/internal/testpeer"
	"github.com/onair-live/onair/internal/turn"
)

const (
	secret = "test-turn-secret-0123456789"
	realm  = "onair"
	wait   = 20 * time.Second // generous: a loaded machine, the race detector
)

// node is a TURN server for one test, and a UDP socket that stands for
// the media engine's port: the only place its relays may send to.
type node struct {
	srv     *turn.Server
	addr    string // the TURN server's, 127.0.0.1:port
	media   net.PacketConn
	mu      sync.Mutex
	refused map[string]int
}

func (n *node) refusals(reason string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.refused[reason]
}

// startNode starts a TURN server on 127.0.0.1, with this node's media on
// 127.0.0.1 (relays to it allowed unless configure says otherwise).
func startNode(t testing.TB, configure func(*turn.Config)) *node {
	t.Helper()
	testpeer.CheckGoroutines(t)
	media, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { media.Close() })
	mediaPort := media.LocalAddr().(*net.UDPAddr).Port
	n := &node{media: media, refused: map[string]int{}}
	port := freeUDPAndTCPPort(t)
	cfg := turn.Config{
		ListenHost: "127.0.0.1", Port: port, Secret: secret, TTL: time.Hour, Realm: realm,
		RelayIP: netip.MustParseAddr("127.0.0.1"), MediaIPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		MediaPort:    func(p int) bool { return p == mediaPort },
		AllowPrivate: true, MaxPerUser: 10,
		OnRefused: func(reason string) {
			n.mu.Lock()
			n.refused[reason]++
			n.mu.Unlock()
		},
	}
	if configure != nil {
		configure(&cfg)
	}
	if n.srv, err = turn.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	n.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return n
}

// freeUDPAndTCPPort is a port free on 127.0.0.1 for both UDP and TCP a
// moment ago.
func freeUDPAndTCPPort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		c, err := net.ListenPacket("udp4", l.Addr().String())
		l.Close()
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

func quiet() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	return f
}

// client is a TURN client over UDP with this credential.
func client(t testing.TB, n *node, user, pass string) *pionturn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: n.addr, TURNServerAddr: n.addr, Conn: conn,
		Username: user, Password: pass, Realm: realm, LoggerFactory: quiet(), RTO: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		conn.Close()
	})
	return c
}

// allocate allocates a relay with a valid credential of user.
func allocate(t testing.TB, n *node, user string) (*pionturn.Client, net.PacketConn) {
	t.Helper()
	name, pass := turn.Credential(secret, user, time.Now().Add(time.Hour))
	c := client(t, n, name, pass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	t.Cleanup(func() { relay.Close() })
	return c, relay
}

// readWithin reads one datagram from c within d, or returns an error.
func readWithin(c net.PacketConn, d time.Duration) (string, net.Addr, error) {
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	k, from, err := c.ReadFrom(buf)
	return string(buf[:k]), from, err
}

// roundTrip sends a packet from the client through relay to to, which
// must reach the node's media port, and one back from there, which must
// reach the client; it returns where the client saw it come from.
func roundTrip(t *testing.T, n *node, relay net.PacketConn, to net.Addr) net.Addr {
	t.Helper()
	if _, err := relay.WriteTo([]byte("to media"), to); err != nil {
		t.Fatal(err)
	}
	got, from, err := readWithin(n.media, wait)
	if err != nil || got != "to media" {
		t.Fatalf("the media port received %q, %v; want the client's packet", got, err)
	}
	if _, err := n.media.WriteTo([]byte("to client"), from); err != nil {
		t.Fatal(err)
	}
	got, src, err := readWithin(relay, wait)
	if err != nil || got != "to client" {
		t.Fatalf("the client received %q, %v; want the media's packet", got, err)
	}
	return src
}

// A relay carries media both ways between a client and this node's media
// port, and drops what a client sends to any other port of this node (a
// service of the host): the relay is never a way in.
func TestRelayReachesOnlyMediaPorts(t *testing.T) {
	n := startNode(t, nil)
	_, relay := allocate(t, n, "ann")

	roundTrip(t, n, relay, n.media.LocalAddr())

	other, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := relay.WriteTo([]byte("to another port"), other.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got, _, err := readWithin(other, time.Second); err == nil {
		t.Errorf("another port of this node received %q through the relay", got)
	}
	if !testpeer.Eventually(wait, func() bool { return n.refusals(turn.RefusedPort) > 0 }) {
		t.Error("the dropped packet was not counted as refused (port)")
	}
}

// Permissions (and so channels) to any address that is not this node's
// are refused: another address of the host, a private or a public one.
func TestRelayRefusesOtherAddresses(t *testing.T) {
	n := startNode(t, nil)
	c, _ := allocate(t, n, "ann")
	port := n.media.LocalAddr().(*net.UDPAddr).Port
	for _, ip := range []string{"127.0.0.2", "10.0.0.1", "192.168.1.1", "8.8.8.8"} {
		if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: port}); err == nil {
			t.Errorf("a permission to %s was granted", ip)
		}
	}
	if got := n.refusals(turn.RefusedPeer); got < 4 {
		t.Errorf("%d refusals counted (peer), want 4 (or more, if retransmitted)", got)
	}
	if err := c.CreatePermission(n.media.LocalAddr()); err != nil {
		t.Errorf("a permission to this node's media address was refused: %v", err)
	}
}

// This node's own loopback (or private) media address is refused too,
// unless allowed: the default for a node on the Internet.
func TestRelayRefusesPrivateUnlessAllowed(t *testing.T) {
	n := startNode(t, func(c *turn.Config) { c.AllowPrivate = false })
	c, relay := allocate(t, n, "ann")
	if err := c.CreatePermission(n.media.LocalAddr()); err == nil {
		t.Error("a permission to this node's loopback address was granted without AllowPrivate")
	}
	if _, err := relay.WriteTo([]byte("x"), n.media.LocalAddr()); err == nil {
		t.Error("a packet to this node's loopback address was relayed without AllowPrivate")
	}
	if n.refusals(turn.RefusedPrivate) == 0 {
		t.Error("no refusal counted (private)")
	}
}

// Only credentials of the REST-API scheme signed with the secret, and not
// expired, may allocate.
func TestCredentialsChecked(t *testing.T) {
	n := startNode(t, nil)
	name, pass := turn.Credential(secret, "ann", time.Now().Add(time.Hour))
	oldName, oldPass := turn.Credential(secret, "ann", time.Now().Add(-time.Minute))
	otherName, otherPass := turn.Credential("another-secret-0123456789", "ann", time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name, user, pass, reason string
	}{
		{"wrong password", name, pass + "x", turn.RefusedAuth},
		{"other secret", otherName, otherPass, turn.RefusedAuth},
		{"expired", oldName, oldPass, turn.RefusedExpired},
		{"no expiry", "ann", pass, turn.RefusedAuth},
	} {
		before := n.refusals(tc.reason)
		if _, err := client(t, n, tc.user, tc.pass).Allocate(); err == nil {
			t.Errorf("%s: allocated", tc.name)
		}
		if n.refusals(tc.reason) <= before {
			t.Errorf("%s: no refusal counted (%s)", tc.name, tc.reason)
		}
	}
	if r, err := client(t, n, name, pass).Allocate(); err != nil {
		t.Errorf("a valid credential: %v", err)
	} else {
		r.Close()
	}
}

// One credential holds at most MaxPerUser relays at once; another user is
// not affected, and a relay released makes room.
func TestAllocationsCappedPerUser(t *testing.T) {
	n := startNode(t, func(c *turn.Config) { c.MaxPerUser = 2 })
	name, pass := turn.Credential(secret, "ann", time.Now().Add(time.Hour))
	var relays []net.PacketConn
	for range 2 {
		r, err := client(t, n, name, pass).Allocate()
		if err != nil {
			t.Fatal(err)
		}
		relays = append(relays, r)
	}
	_, err := client(t, n, name, pass).Allocate()
	if err == nil || !strings.Contains(err.Error(), "486") {
		t.Errorf("a third relay of one user: %v, want 486 Allocation Quota Reached", err)
	}
	if n.refusals(turn.RefusedQuota) < 1 {
		t.Error("no refusal counted (quota)")
	}
	allocate(t, n, "bob")
	if got := n.srv.Allocations(); got != 3 {
		t.Errorf("Allocations() = %d, want 3", got)
	}

	relays[0].Close() // deallocates
	if !testpeer.Eventually(wait, func() bool { return n.srv.Allocations() == 2 }) {
		t.Fatalf("Allocations() = %d after a release, want 2", n.srv.Allocations())
	}
	if r, err := client(t, n, name, pass).Allocate(); err != nil {
		t.Errorf("a relay after one was released: %v", err)
	} else {
		r.Close()
	}
	relays[1].Close()
}

// A TURN connection over TCP is ended when the server closes (pion's
// server leaves accepted connections open), and no goroutine is left.
func TestCloseEndsTCPConnections(t *testing.T) {
	n := startNode(t, nil)
	conn, err := net.Dial("tcp4", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A binding answered: the server is serving this connection.
	if _, err := conn.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	if _, err := conn.Read(make([]byte, 1500)); err != nil {
		t.Fatalf("binding over TCP: %v", err)
	}
	if err := n.srv.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Read(make([]byte, 1500))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the TCP connection is still open after Close: %v", err)
	}
}

// Behind NAT 1:1 (-public-ip) clients know the node by its public address
// only: a relay to it reaches the media port on the node's own address,
// and the media's answers come back from the public address, as the
// client's permission expects.
func TestRelayMapsPublicAddress(t *testing.T) {
	public := netip.MustParseAddr("203.0.113.7") // TEST-NET-3: never routed
	n := startNode(t, func(c *turn.Config) {
		c.PublicIPs = []netip.Addr{public}
		c.AllowPrivate = false // the public address needs no exception
	})
	_, relay := allocate(t, n, "ann")
	port := n.media.LocalAddr().(*net.UDPAddr).Port
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(public, uint16(port)))
	if src := roundTrip(t, n, relay, to); src.String() != to.String() {
		t.Errorf("the media's packet came from %s, want the public %s", src, to)
	}
}
