package redismode

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/onair-live/onair/internal/store/redistest"
	"github.com/onair-live/onair/internal/testpeer"
)

// TestClusterSimulcastRelay: a simulcast presenter on the origin, and
// -relay-fanout 1, so that b pulls from the origin and c from b. Each
// relay carries every layer (its endpoint says so), and the viewers of b
// and c get the layer they ask for: WHEP ?layer=l and ?layer=h on b, a
// WebSocket viewer on c moved by setLayer, also after b dies and c pulls
// from a.
func TestClusterSimulcastRelay(t *testing.T) {
	srv := redistest.Start(t)
	fan := []string{"-relay-fanout", "1"}
	a := startNode(t, "a", srv.URL, "c8:", fan...)
	b := startNode(t, "b", srv.URL, "c8:", fan...)
	c := startNode(t, "c", srv.URL, "c8:", fan...)
	pub, err := testpeer.NewPublisher(testpeer.PublisherOptions{Simulcast: true})
	if err != nil {
		t.Fatal(err)
	}
	testpeer.MustWHIPPublisher(t, a.Server, pub, "sc", testpeer.WHIPOptions{Query: url.Values{"email": {"star@x"}}})

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	watch := func(p *proc, email, layer string) *testpeer.ViewerPeer {
		t.Helper()
		q := url.Values{"email": {email}, "layer": {layer}}
		v := testpeer.MustWHEPViewer(t, p.Server, nil, "sc", testpeer.WHIPOptions{Query: q})
		return v.Peer
	}
	onLayer := func(vp *testpeer.ViewerPeer, name string, layer int) {
		t.Helper()
		if err := vp.WaitLayer(ctx, name, layer); err != nil {
			t.Fatal(err)
		}
	}
	low, high := watch(b, "low@x", "l"), watch(b, "high@x", "h")
	onLayer(low, "b's viewer of ?layer=l on the low layer", 0)
	onLayer(high, "b's viewer of ?layer=h on the top layer", 2)

	ws := testpeer.MustViewer(t, c.Server, "ws@x", "sc", testpeer.ViewerOptions{})
	onLayer(ws.Peer, "c's WebSocket viewer on the top layer", 2)
	if err := ws.WS.Send(map[string]string{"id": "setLayer", "layer": "l"}); err != nil {
		t.Fatal(err)
	}
	if m, err := ws.WS.NextWithin(timeout, "setLayerResponse"); err != nil {
		t.Fatal(err)
	} else if m.Response != "accepted" {
		t.Fatalf("setLayer l: %s", m.Raw)
	}
	onLayer(ws.Peer, "c's WebSocket viewer pinned to l", 0)

	// The relays carry every layer; each viewer is shown on its own.
	for _, hop := range []struct{ from, to *proc }{{a, b}, {b, c}} {
		eps, err := hop.from.REST.Endpoints("star@x")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ep := range eps {
			if ep.EndpointName == "relay:"+nodeID(t, hop.to) {
				found = true
				if got := fmt.Sprint(ep.Stats.Layers); got != "[l m h]" {
					t.Errorf("relay of %s at %s carries %s, want [l m h]", hop.to.name, hop.from.name, got)
				}
			}
		}
		if !found {
			t.Errorf("no relay of %s at %s: %+v", hop.to.name, hop.from.name, eps)
		}
	}
	layers := map[string]string{}
	for _, p := range []*proc{b, c} {
		eps, err := p.REST.Endpoints("star@x")
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range eps {
			if ep.Stats.Layer != "" {
				layers[p.name+":"+ep.EndpointName] = fmt.Sprintf("%s pinned=%v", ep.Stats.Layer, ep.Stats.LayerPinned)
			}
		}
	}
	want := "map[b:viewer:high@x:h pinned=true b:viewer:low@x:l pinned=true c:viewer:ws@x:l pinned=true]"
	if got := fmt.Sprint(layers); got != want {
		t.Errorf("the edges' viewers: %s, want %s", got, want)
	}
	for _, p := range []*testpeer.ViewerPeer{low, high, ws.Peer} {
		if err := p.Check(); err != nil {
			t.Error(err)
		}
	}

	// c's parent dies: c pulls every layer again from a, and its viewer
	// stays on its layer, then moves to another.
	b.kill9()
	waitFor(t, "c pulling again", func() bool { return c.count(`msg="pulling room again"`) == 1 })
	onLayer(ws.Peer, "c's WebSocket viewer pinned to l, after c pulled again", 0)
	if err := ws.WS.Send(map[string]string{"id": "setLayer", "layer": "h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.WS.NextWithin(timeout, "setLayerResponse"); err != nil {
		t.Fatal(err)
	}
	onLayer(ws.Peer, "c's WebSocket viewer pinned to h, after c pulled again", 2)
	if err := ws.Peer.Check(); err != nil {
		t.Error(err)
	}
}
