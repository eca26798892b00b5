package redismode

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/store/redistest"
	"github.com/onair-live/onair/internal/testpeer"
)

// The cluster: several onair processes on one Redis serve every room
// together, relaying media between them over WHEP.

// clusterSecret signs the relay tokens of the test clusters.
const clusterSecret = "test-cluster-secret-0123456789abcdef"

// viewersPerNode is how many WHEP viewers each edge serves in
// TestClusterWHEPAcrossNodes: 10 by default, so that four onair processes
// and every viewer's peer in this one stay within the test's timeouts under
// the race detector on a busy 2-core machine; -cluster.viewers 50 runs the
// 3 × 50 of the issue (29–67 s under -race on a 2-core machine).
var viewersPerNode = flag.Int("cluster.viewers", 10, "WHEP viewers per edge in TestClusterWHEPAcrossNodes")

// startNode starts an onair node of a cluster on Redis url: it listens on
// a port picked here, which it advertises.
func startNode(t *testing.T, name, redisURL, prefix string, extra ...string) *proc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	args := append([]string{"-addr", addr, "-advertise-url", "http://" + addr, "-cluster-secret", clusterSecret,
		"-disconnect-timeout", "6s", "-drain-timeout", "5s"}, extra...)
	p := startProc(t, name, redisURL, prefix, 3*time.Second, args...)
	p.Server.Config.BasePath = "/signal" // for its WHIP client
	return p
}

// relayNames lists the names of the relay endpoints of presenter's pipeline
// on p.
func relayNames(p *proc, presenter string) []string {
	eps, err := p.REST.Endpoints(presenter)
	if err != nil {
		return nil
	}
	out := []string{}
	for _, ep := range eps {
		if strings.HasPrefix(ep.EndpointName, "relay:") {
			out = append(out, ep.EndpointName)
		}
	}
	return out
}

// watchAll starts n WHEP viewers of room on each of nodes, in parallel, and
// waits until every one has media.
func watchAll(t *testing.T, nodes []*proc, room string, n int) []*testpeer.WHEPViewer {
	t.Helper()
	var (
		mu  sync.Mutex
		all []*testpeer.WHEPViewer
		wg  sync.WaitGroup
	)
	for _, p := range nodes {
		for i := 0; i < n; i++ {
			vp, err := testpeer.NewViewerPeer()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(vp.Close)
			wg.Add(1)
			go func(p *proc, i int) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				q := url.Values{"email": {fmt.Sprintf("v%d@%s", i, p.name)}}
				sess, err := vp.WatchWHEP(ctx, p.Server.WHIP(), room, testpeer.WHIPOptions{Query: q})
				if err != nil {
					t.Errorf("viewer %d on %s: %v", i, p.name, err)
					return
				}
				t.Cleanup(func() { sess.Delete() })
				if err := vp.WaitMedia(ctx, 10); err != nil {
					t.Errorf("viewer %d on %s: %v", i, p.name, err)
					return
				}
				mu.Lock()
				all = append(all, &testpeer.WHEPViewer{Peer: vp, Session: sess})
				mu.Unlock()
			}(p, i)
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return all
}

// TestClusterWHEPAcrossNodes: a WHIP presenter on node a, WHEP viewers on
// nodes b, c and d. Every viewer gets the media; a serves exactly one relay
// to each of the other nodes, and the viewers are counted across nodes.
func TestClusterWHEPAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	a := startNode(t, "a", srv.URL, "c1:")
	b := startNode(t, "b", srv.URL, "c1:")
	c := startNode(t, "c", srv.URL, "c1:")
	d := startNode(t, "d", srv.URL, "c1:")

	pub := testpeer.MustWHIPPublisher(t, a.Server, nil, "show", testpeer.WHIPOptions{
		Query: url.Values{"email": {"star@x"}}})
	viewers := watchAll(t, []*proc{b, c, d}, "show", *viewersPerNode)

	waitFor(t, "a serving one relay to each edge", func() bool { return len(relayNames(a, "star@x")) == 3 })
	names := map[string]bool{}
	for _, n := range relayNames(a, "star@x") {
		names[n] = true
	}
	for _, p := range []*proc{b, c, d} {
		if !names["relay:"+nodeID(t, p)] {
			t.Errorf("no relay endpoint of %s on a: %v", p.name, relayNames(a, "star@x"))
		}
		if n := p.count(`msg="pulling room"`, "room=show"); n != 1 {
			t.Errorf("%s pulled the room %d times, want once", p.name, n)
		}
	}
	want := fmt.Sprintf("[show:%d]", 3*(*viewersPerNode))
	waitFor(t, "the count across nodes", func() bool { return fmt.Sprint(roomList(d.REST)) == want })

	// More media still flows to everyone, through the relays.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, v := range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := v.Peer.WaitMoreMedia(ctx, 10); err != nil {
				t.Error(err)
				return
			}
			if err := v.Peer.Check(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	_ = pub
}

// nodeID is a node's id, as its log names it.
func nodeID(t *testing.T, p *proc) string {
	t.Helper()
	m := nodeLine.FindStringSubmatch(p.Log())
	if m == nil {
		t.Fatalf("%s logged no node id", p.name)
	}
	return m[1]
}

var nodeLine = regexp.MustCompile(`msg="cluster node" node=(\S+)`)

// TestClusterViewerTokenCannotRelay: a WHEP request that asks to pull as a
// relay with a viewer's token (or a token of the cluster secret without
// the relay grant) is refused, and no relay endpoint is made.
func TestClusterViewerTokenCannotRelay(t *testing.T) {
	srv := redistest.Start(t)
	a := startNode(t, "a", srv.URL, "c7:")
	testpeer.MustWHIPPublisher(t, a.Server, nil, "show", testpeer.WHIPOptions{Query: url.Values{"email": {"star@x"}}})

	exp := time.Now().Add(time.Hour).Unix()
	viewerTok, err := auth.Mint([]byte(clusterSecret), auth.Claims{Subject: "evil", Grants: []string{"view"}, ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	otherTok, err := auth.Mint([]byte("another-secret-0123456789abcdef-xyz"), auth.Claims{Subject: "evil", Grants: []string{"relay"}, ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for name, tok := range map[string]string{"a viewer's token": viewerTok, "another secret's relay token": otherTok, "no token": ""} {
		vp, err := testpeer.NewViewerPeer()
		if err != nil {
			t.Fatal(err)
		}
		defer vp.Close()
		_, err = vp.WatchWHEP(ctx, a.Server.WHIP(), "show", testpeer.WHIPOptions{Token: tok,
			Query: url.Values{"relay": {"evil"}}})
		var he *testpeer.HTTPError
		if !errors.As(err, &he) || he.Response.Status != http.StatusForbidden {
			t.Errorf("relay pull with %s: %v, want 403", name, err)
		}
	}
	if names := relayNames(a, "star@x"); len(names) != 0 {
		t.Errorf("relay endpoints after refused pulls: %v", names)
	}
}

// TestClusterOriginalProtocolAcrossNodes: the REST + WebSocket protocol, each call
// on another node: the presenter's REST and WebSocket on a, a viewer's REST
// join on b and its WebSocket on c (another's the other way round, its
// media on a). Both watch; when a ends the room, both hear
// stopCommunication, and c releases its pull.
func TestClusterOriginalProtocolAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	hooks := newHookSink(t)
	a := startNode(t, "a", srv.URL, "c2:", hooks.flags()...)
	b := startNode(t, "b", srv.URL, "c2:", hooks.flags()...)
	c := startNode(t, "c", srv.URL, "c2:", hooks.flags()...)

	p := testpeer.MustPresenter(t, a.Server, "ann@x", "live", testpeer.PresenterOptions{})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	watch := func(join, media *proc, email string) *testpeer.Viewer {
		t.Helper()
		want(t, join.REST.Join(email, "live"), http.StatusCreated)
		v, err := media.Server.WatchOn(ctx, testpeer.MustWS(t, media.Server), email, "live", testpeer.ViewerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Close)
		if err := v.Peer.WaitMedia(ctx, 10); err != nil {
			t.Fatalf("%s: %v", email, err)
		}
		return v
	}
	vic := watch(b, c, "vic@x")
	val := watch(c, a, "val@x")
	for _, n := range []*proc{a, b, c} {
		if got := fmt.Sprint(roomList(n.REST)); got != "[live:2]" {
			t.Errorf("rooms on %s: %s", n.name, got)
		}
	}
	if n := c.count(`msg="pulling room"`, "room=live"); n != 1 {
		t.Errorf("c pulled the room %d times", n)
	}
	if n := b.count(`msg="pulling room"`); n != 0 {
		t.Errorf("b, which serves no media, pulled the room")
	}

	// A viewer served by c who leaves through a: c sees its seat go and
	// drops it.
	vera := watch(b, c, "vera@x")
	want(t, a.REST.Leave("vera@x"), http.StatusNoContent)
	if _, err := vera.WS.NextWithin(timeout, testpeer.IDStop); err != nil {
		t.Errorf("vera after leaving through a: %v", err)
	}
	waitFor(t, "c dropping vera", func() bool { return c.count(`msg="viewer left through another node"`, "viewer=vera@x") == 1 })

	want(t, a.REST.EndRoom("ann@x"), http.StatusNoContent)
	for _, v := range []*testpeer.Viewer{vic, val} {
		if _, err := v.WS.NextWithin(timeout, testpeer.IDStop); err != nil {
			t.Errorf("%s after the end: %v", v.Email, err)
		}
	}
	waitFor(t, "c releasing its pull", func() bool {
		pls, err := c.REST.Pipelines()
		return err == nil && len(pls) == 0
	})
	waitFor(t, "the room gone everywhere", func() bool { return fmt.Sprint(roomList(b.REST)) == "[]" })
	waitFor(t, "room.finished once", func() bool { return hooks.has("room.finished", "live", "", "ended") })
	if n := hooks.count("room.finished"); n != 1 {
		t.Errorf("room.finished sent %d times: %s", n, hooks)
	}
}

// mustWatch starts one WHEP viewer of room on p and waits for its media.
func mustWatch(t *testing.T, p *proc, room, email string) *testpeer.WHEPViewer {
	t.Helper()
	vp, err := testpeer.NewViewerPeer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vp.Close)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sess, err := vp.WatchWHEP(ctx, p.Server.WHIP(), room, testpeer.WHIPOptions{Query: url.Values{"email": {email}}})
	if err != nil {
		t.Fatalf("%s on %s: %v", email, p.name, err)
	}
	t.Cleanup(func() { sess.Delete() })
	if err := vp.WaitMedia(ctx, 10); err != nil {
		t.Fatalf("%s on %s: %v", email, p.name, err)
	}
	return &testpeer.WHEPViewer{Peer: vp, Session: sess}
}

// TestClusterFanoutTree: with -relay-fanout 1, the origin serves one pull;
// the third node pulls from the second, not from the origin, and its
// viewer gets the media through two hops.
func TestClusterFanoutTree(t *testing.T) {
	srv := redistest.Start(t)
	fan := []string{"-relay-fanout", "1"}
	a := startNode(t, "a", srv.URL, "c3:", fan...)
	b := startNode(t, "b", srv.URL, "c3:", fan...)
	c := startNode(t, "c", srv.URL, "c3:", fan...)
	testpeer.MustWHIPPublisher(t, a.Server, nil, "tree", testpeer.WHIPOptions{Query: url.Values{"email": {"star@x"}}})

	mustWatch(t, b, "tree", "vb@x")
	vc := mustWatch(t, c, "tree", "vc@x")
	if got, want := relayNames(a, "star@x"), "[relay:"+nodeID(t, b)+"]"; fmt.Sprint(got) != want {
		t.Errorf("relays at the origin: %v, want %s", got, want)
	}
	if got, want := relayNames(b, "star@x"), "[relay:"+nodeID(t, c)+"]"; fmt.Sprint(got) != want {
		t.Errorf("relays at b: %v, want %s", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := vc.Peer.WaitMoreMedia(ctx, 30); err != nil {
		t.Fatal(err)
	}
	if err := vc.Peer.Check(); err != nil {
		t.Error(err)
	}
}

// TestClusterEdgeKilled: kill -9 of an edge. The origin releases its relay
// within the disconnect timeout, the room's count drops its viewers, and
// the viewers of the other edge lose nothing.
func TestClusterEdgeKilled(t *testing.T) {
	srv := redistest.Start(t)
	a := startNode(t, "a", srv.URL, "c4:")
	b := startNode(t, "b", srv.URL, "c4:")
	c := startNode(t, "c", srv.URL, "c4:")
	testpeer.MustWHIPPublisher(t, a.Server, nil, "show", testpeer.WHIPOptions{Query: url.Values{"email": {"star@x"}}})
	mustWatch(t, b, "show", "vb@x")
	vc := mustWatch(t, c, "show", "vc@x")
	waitFor(t, "two relays at a", func() bool { return len(relayNames(a, "star@x")) == 2 })

	before := vc.Peer.Stats()
	b.kill9()
	killed := time.Now()
	waitFor(t, "a releasing b's relay", func() bool { return len(relayNames(a, "star@x")) == 1 })
	took := time.Since(killed)
	t.Logf("the origin released the dead edge's relay %s after kill -9", took.Round(time.Millisecond))
	if took > 20*time.Second {
		t.Errorf("relay of the dead edge released after %s, want within 20s", took)
	}
	waitFor(t, "the dead edge's viewer uncounted", func() bool { return fmt.Sprint(roomList(a.REST)) == "[show:1]" })
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := vc.Peer.WaitMoreMedia(ctx, 30); err != nil {
		t.Fatal(err)
	}
	after := vc.Peer.Stats()
	if err := vc.Peer.Check(); err != nil {
		t.Errorf("viewer on c: %v", err)
	}
	t.Logf("viewer on c: before %s; after %s", before, after)
	if n := c.count(`msg="relay source lost`); n != 0 {
		t.Errorf("c lost its relay source %d times", n)
	}
}

// TestClusterRelayParentKilled: with -relay-fanout 1, c pulls from b, b
// from the origin. kill -9 of b: c pulls again from the origin within 5 s,
// and its viewer stays connected and gets the media again.
func TestClusterRelayParentKilled(t *testing.T) {
	srv := redistest.Start(t)
	fan := []string{"-relay-fanout", "1"}
	a := startNode(t, "a", srv.URL, "c5:", fan...)
	b := startNode(t, "b", srv.URL, "c5:", fan...)
	c := startNode(t, "c", srv.URL, "c5:", fan...)
	testpeer.MustWHIPPublisher(t, a.Server, nil, "show", testpeer.WHIPOptions{Query: url.Values{"email": {"star@x"}}})
	mustWatch(t, b, "show", "vb@x")
	vc := mustWatch(t, c, "show", "vc@x")
	if got := relayNames(b, "star@x"); len(got) != 1 {
		t.Fatalf("relays at b: %v, want c's", got)
	}

	b.kill9()
	killed := time.Now()
	waitFor(t, "c pulling again", func() bool { return c.count(`msg="pulling room again"`) == 1 })
	took := time.Since(killed)
	t.Logf("c pulled again %s after its parent's kill -9", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("c pulled again after %s, want within 5s", took)
	}
	waitFor(t, "a serving c", func() bool { return fmt.Sprint(relayNames(a, "star@x")) == "[relay:"+nodeID(t, c)+"]" })
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := vc.Peer.WaitMoreMedia(ctx, 30); err != nil {
		t.Fatal(err)
	}
	if st := vc.Peer.State(); st != webrtc.PeerConnectionStateConnected {
		t.Errorf("viewer on c: %s", st)
	}
	if n := c.count(`msg="viewer left"`); n != 0 {
		t.Errorf("a viewer left c: %d", n)
	}
}

// TestClusterDrain: a drained node refuses new viewers (WHEP 307 to
// another node, REST 503 with Retry-After) while its viewer keeps playing;
// the registry shows it draining; when its viewer leaves, it shuts down by
// itself.
func TestClusterDrain(t *testing.T) {
	ec := startEdgeCase(t, "c6:", "-drain-timeout", "60s")
	a, b, vb := ec.a, ec.b, ec.vb

	want(t, b.REST.Do(http.MethodPost, "/cluster/drain", "", nil), http.StatusAccepted)
	aURL, bURL := strings.TrimSuffix(a.URL, "/signal"), strings.TrimSuffix(b.URL, "/signal")
	wantNodes := fmt.Sprintf("[%s viewers=0 rooms=1 relays=1 draining=false %s viewers=1 rooms=1 relays=0 draining=true]", aURL, bURL)
	if nodeID(t, a) > nodeID(t, b) {
		wantNodes = fmt.Sprintf("[%s viewers=1 rooms=1 relays=0 draining=true %s viewers=0 rooms=1 relays=1 draining=false]", bURL, aURL)
	}
	var gotNodes string
	if !testpeer.Eventually(timeout, func() bool {
		var nodes []struct {
			ID       string `json:"id"`
			URL      string `json:"url"`
			Viewers  int    `json:"viewers"`
			Rooms    int    `json:"rooms"`
			Relays   int    `json:"relays"`
			Draining bool   `json:"draining"`
		}
		if err := a.REST.Do(http.MethodGet, "/cluster/nodes", "", nil).Decode(&nodes); err != nil {
			gotNodes = err.Error()
			return false
		}
		var out []string
		for _, n := range nodes {
			out = append(out, fmt.Sprintf("%s viewers=%d rooms=%d relays=%d draining=%v", n.URL, n.Viewers, n.Rooms, n.Relays, n.Draining))
		}
		gotNodes = fmt.Sprint(out)
		return gotNodes == wantNodes
	}) {
		t.Errorf("GET /cluster/nodes: %s, want %s", gotNodes, wantNodes)
	}

	// New viewers are sent to a.
	wantSentElsewhere(t, b, a, "the draining node")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	// b's viewer plays on, and b stays up until it leaves.
	wantDrainedExit(ctx, t, b, vb)
	if n := b.count(`msg=drained component=cluster`); n != 1 {
		t.Errorf("b logged drained %d times", n)
	}
}

// SIGTERM starts the same drain as POST /signal/cluster/drain, which a
// rolling deploy relies on: the node stays up and keeps its viewer playing,
// sends new WHEP viewers to another node, and exits 0 once the viewer left.
func TestClusterDrainOnSIGTERM(t *testing.T) {
	ec := startEdgeCase(t, "c13:", "-drain-timeout", "60s")
	a, b, vb := ec.a, ec.b, ec.vb

	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	aURL, bURL := strings.TrimSuffix(a.URL, "/signal"), strings.TrimSuffix(b.URL, "/signal")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var status int
	var location string
	if !testpeer.Eventually(timeout, func() bool {
		resp, err := noFollow.Post(bURL+"/whep/show", "application/sdp", strings.NewReader("v=0\r\n"))
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		status, location = resp.StatusCode, resp.Header.Get("Location")
		return status == http.StatusTemporaryRedirect
	}) || location != aURL+"/whep/show" {
		t.Fatalf("WHEP on the node given SIGTERM: %d, Location %q; want 307 to a", status, location)
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	wantDrainedExit(ctx, t, b, vb)
}

// wantDrainedExit checks that a draining node's viewer still gets media and
// that the node stays up while it watches, then has the viewer leave and
// waits for the node to exit 0 by itself.
func wantDrainedExit(ctx context.Context, t *testing.T, node *proc, v *testpeer.WHEPViewer) {
	t.Helper()
	if err := v.Peer.WaitMoreMedia(ctx, 30); err != nil {
		t.Fatalf("the viewer of the draining node: %v", err)
	}
	select {
	case <-node.exited:
		t.Fatalf("the draining node exited with its viewer still watching")
	default:
	}
	want(t, v.Session.Delete(), http.StatusOK)
	select {
	case <-node.exited:
		if code := node.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("the drained node exited with %d", code)
		}
	case <-time.After(timeout):
		t.Fatalf("the draining node is still up %s after its last viewer left", timeout)
	}
}
