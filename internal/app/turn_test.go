package app_test

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	pionturn "github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/testpeer"
	"github.com/onair-live/onair/internal/turn"
)

// turnSecret signs the test servers' TURN credentials.
const turnSecret = "test-turn-secret-0123456789"

// startTURNServer starts onair with the embedded TURN server on a free
// port, media on one UDP port, and relays to this node's loopback address
// allowed (the test's only network).
func startTURNServer(t *testing.T, configure func(*config.Config)) *testpeer.Server {
	t.Helper()
	mux, tp := freePort(t, "udp"), freePort(t, "tcp")
	return testpeer.StartServer(t, func(c *config.Config) {
		c.UDPMuxPort, c.TURNPort = mux, tp
		c.TURNSecret = turnSecret
		c.TURNAllowPrivatePeers = true
		if configure != nil {
			configure(c)
		}
	})
}

// clientICEServers are the ICE servers GET /signal/config hands out.
func clientICEServers(t *testing.T, srv *testpeer.Server) []webrtc.ICEServer {
	t.Helper()
	var cfg struct {
		ICEServers []webrtc.ICEServer `json:"iceServers"`
	}
	r := srv.REST.Do(http.MethodGet, "/config", "", nil)
	if err := r.Want(http.StatusOK); err != nil {
		t.Fatal(err)
	}
	if err := r.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.ICEServers
}

// onlyURLs keeps, of servers, the URLs that start with prefix and end with
// suffix, and the servers left with any.
func onlyURLs(servers []webrtc.ICEServer, prefix, suffix string) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, s := range servers {
		var urls []string
		for _, u := range s.URLs {
			if strings.HasPrefix(u, prefix) && strings.HasSuffix(u, suffix) {
				urls = append(urls, u)
			}
		}
		if len(urls) > 0 {
			s.URLs = urls
			out = append(out, s)
		}
	}
	return out
}

// A viewer that may use only relay candidates (ICETransportPolicy relay)
// watches through the embedded TURN server over UDP, with the credential
// GET /signal/config handed it, and gets the media whole.
func TestRelayOnlyViewerOverTURNUDP(t *testing.T) {
	srv := startTURNServer(t, nil)
	const room = "ann@example.com"
	testpeer.MustPresenter(t, srv, "ann@example.com", room, testpeer.PresenterOptions{})

	servers := onlyURLs(clientICEServers(t, srv), "turn:127.0.0.1:", "?transport=udp")
	if len(servers) != 1 || servers[0].Username == "" || servers[0].Credential == "" {
		t.Fatalf("/signal/config hands out no TURN server over UDP with a credential: %+v", clientICEServers(t, srv))
	}
	wantCredential(t, servers[0])
	vp, err := testpeer.NewViewerPeerOn(testpeer.Network{Relay: servers})
	if err != nil {
		t.Fatal(err)
	}
	v, err := srv.JoinViewerWith(within(t), vp, "rey@example.com", room, testpeer.ViewerOptions{})
	if err != nil {
		t.Fatalf("relay-only viewer: %v", err)
	}
	t.Cleanup(v.Close)
	wantMedia(t, v, 30)
	wantRelayed(t, v.Peer)

	fams := scrapeMetrics(t, srv)
	if n, _ := metricValue(fams, "onair_turn_allocations_total"); n < 1 {
		t.Errorf("onair_turn_allocations_total is %v, want at least 1", n)
	}
	if n, _ := metricValue(fams, "onair_turn_allocations"); n < 1 {
		t.Errorf("onair_turn_allocations is %v, want at least 1", n)
	}
}

// wantRelayed fails the test unless the peer's selected pair is relayed.
func wantRelayed(t testing.TB, p interface {
	SelectedPair() (*webrtc.ICECandidatePair, error)
}) {
	t.Helper()
	pair, err := p.SelectedPair()
	if err != nil {
		t.Fatal(err)
	}
	if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
		t.Errorf("selected pair %s, want a relayed local candidate", pair)
	}
}

// wantCredential fails the test unless s carries a TURN REST-API
// credential under turnSecret that expires in about a day (the default
// -turn-credential-ttl).
func wantCredential(t testing.TB, s webrtc.ICEServer) {
	t.Helper()
	exp, user, ok := strings.Cut(s.Username, ":")
	sec, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || user == "" {
		t.Fatalf("TURN username %q is not <expiry>:<user>", s.Username)
	}
	if left := time.Until(time.Unix(sec, 0)); left < 23*time.Hour || left > 25*time.Hour {
		t.Errorf("TURN credential expires in %s, want about 24h", left)
	}
	if _, pass := turn.Credential(turnSecret, user, time.Unix(sec, 0)); s.Credential != pass {
		t.Errorf("TURN password %v is not the HMAC of its username", s.Credential)
	}
}

// The running server's relay, with a credential it handed out, reaches
// nothing but this node's media port: a permission to another address is
// refused, a packet to another port of this node is dropped, and both show
// in /metrics.
func TestTURNRelaysOnlyToThisNode(t *testing.T) {
	srv := startTURNServer(t, nil)
	servers := onlyURLs(clientICEServers(t, srv), "turn:127.0.0.1:", "?transport=udp")
	if len(servers) != 1 {
		t.Fatalf("no TURN server over UDP handed out: %+v", clientICEServers(t, srv))
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(servers[0].URLs[0], "turn:"), "?transport=udp")
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	c, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: servers[0].Username, Password: servers[0].Credential.(string), LoggerFactory: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate with a handed-out credential: %v", err)
	}
	defer relay.Close()

	if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: srv.Config.UDPMuxPort}); err == nil {
		t.Error("a permission to 127.0.0.2, not this node's, was granted")
	}
	other, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := relay.WriteTo([]byte("to another port"), other.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = other.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := other.ReadFrom(make([]byte, 1500)); err == nil {
		t.Errorf("another port of this node received %d bytes through the relay", n)
	}
	fams := scrapeMetrics(t, srv)
	for _, reason := range []string{turn.RefusedPeer, turn.RefusedPort} {
		if n, _ := metricValue(fams, "onair_turn_refusals_total", "reason", reason); n < 1 {
			t.Errorf("onair_turn_refusals_total{reason=%q} is %v, want at least 1", reason, n)
		}
	}
}
