package redismode

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/store/redistest"
	"github.com/onair-live/onair/internal/testpeer"
)

// TestClusterNodeFull: a node at -node-max-viewers keeps its viewers and
// sends new ones elsewhere, as a draining node does: WHEP with a 307 to a
// node that has room, the original protocol with 503 and Retry-After.
func TestClusterNodeFull(t *testing.T) {
	ec := startEdgeCase(t, "c11:", "-node-max-viewers", "1")
	a, b, vb := ec.a, ec.b, ec.vb

	wantSentElsewhere(t, b, a, "the full node")
	// The viewer b holds plays on.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := vb.Peer.WaitMoreMedia(ctx, 30); err != nil {
		t.Fatalf("viewer on the full node: %v", err)
	}
	if err := vb.Peer.Check(); err != nil {
		t.Errorf("viewer on the full node: %v", err)
	}
}

// TestClusterOriginKilled: kill -9 of the node that holds the presenter
// ends the room for everyone, at the edges too: the edge's viewer's media
// session ends and the room leaves the room list, by the reconciliation
// after -redis-owner-ttl (3 s here) or sooner, when the edge notices its
// relay source is gone.
func TestClusterOriginKilled(t *testing.T) {
	ec := startEdgeCase(t, "c12:")
	a, b, vb := ec.a, ec.b, ec.vb

	a.kill9()
	killed := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := vb.Peer.WaitEnded(ctx); err != nil {
		t.Fatalf("the edge's viewer after the origin's kill -9: %v", err)
	}
	t.Logf("the edge's viewer was ended %s after the origin's kill -9", time.Since(killed).Round(time.Millisecond))
	waitFor(t, "the room gone from b's list", func() bool { return fmt.Sprint(roomList(b.REST)) == "[]" })
	waitFor(t, "b holding no media for the room", func() bool {
		eps, err := b.REST.Endpoints("star@x")
		return err != nil || len(eps) == 0
	})
}

// TestClusterRedisAway: while Redis is away, a running broadcast and the
// relay that carries it to another node keep flowing, and that node's
// viewer keeps playing; new work is refused until Redis is back.
func TestClusterRedisAway(t *testing.T) {
	ec := startEdgeCase(t, "c10:")
	b, vb := ec.b, ec.vb

	ec.redis.Stop()
	waitFor(t, "b's health check DOWN", func() bool {
		return b.REST.Do(http.MethodGet, "/healthcheck/_check", "", nil).Status == http.StatusServiceUnavailable
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	before := vb.Peer.Stats()
	if err := vb.Peer.WaitMoreMedia(ctx, 90); err != nil { // 3 s of video
		t.Fatalf("viewer on b with Redis away: %v", err)
	}
	if err := vb.Peer.Check(); err != nil {
		t.Errorf("viewer on b with Redis away: %v", err)
	}
	t.Logf("viewer on b: %s with Redis up; %s after 3 s with Redis away", before, vb.Peer.Stats())
	if n := b.count(`msg="relay source lost`); n != 0 {
		t.Errorf("b lost its relay source %d times while Redis was away", n)
	}
	want(t, b.REST.Join("late@x", "show"), http.StatusServiceUnavailable)
}

// wantSentElsewhere checks that node from, which takes no new viewers, sends
// them to node to: WHEP with a 307 to it, which a WHEP player follows, and
// the original protocol with 503 and Retry-After.
func wantSentElsewhere(t *testing.T, from, to *proc, what string) {
	t.Helper()
	fromURL, toURL := strings.TrimSuffix(from.URL, "/signal"), strings.TrimSuffix(to.URL, "/signal")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Post(fromURL+"/whep/show?email=raw%40x", "application/sdp", strings.NewReader("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != toURL+"/whep/show?email=raw%40x" {
		t.Errorf("WHEP on %s: %s, Location %q; want 307 to %s", what, resp.Status, resp.Header.Get("Location"), to.name)
	}
	mustWatch(t, from, "show", "moved@x")
	if to.count(`msg="viewer served here"`, "viewer=moved@x") != 1 || from.count(`msg="viewer served here"`, "viewer=moved@x") != 0 {
		t.Errorf("the viewer refused by %s is not served by %s", what, to.name)
	}
	r := from.REST.Join("late@x", "show")
	want(t, r, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("REST join on %s: no Retry-After: %s", what, r)
	}
}

// edgeCase is a two-node cluster on its own Redis: a WHIP presenter,
// star@x, live in room "show" on origin a, and a WHEP viewer, vb@x,
// playing on edge b.
type edgeCase struct {
	redis *redistest.Server
	a, b  *proc
	vb    *testpeer.WHEPViewer
}

// startEdgeCase starts an edgeCase, with the extra flags for b.
func startEdgeCase(t *testing.T, prefix string, bFlags ...string) edgeCase {
	t.Helper()
	srv := redistest.Start(t)
	a := startNode(t, "a", srv.URL, prefix)
	b := startNode(t, "b", srv.URL, prefix, bFlags...)
	testpeer.MustWHIPPublisher(t, a.Server, nil, "show", testpeer.WHIPOptions{Query: url.Values{"email": {"star@x"}}})
	return edgeCase{redis: srv, a: a, b: b, vb: mustWatch(t, b, "show", "vb@x")}
}
