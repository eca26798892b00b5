package app_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/testpeer"
)

// A presenter publishes three simulcast layers over WHIP. A WHEP viewer
// that asks for ?layer=l gets the lowest, one that asks for nothing the
// top; a WebSocket viewer pins the middle one with a setLayer message, then
// lets its bandwidth choose again. /media/endpoints shows each viewer's
// layer and /metrics counts the switches; bad layer names are refused.
func TestSimulcastLayerPinning(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	ctx := within(t)
	const room = "sc@example.com"
	pub, err := testpeer.NewPublisher(testpeer.PublisherOptions{Simulcast: true})
	if err != nil {
		t.Fatal(err)
	}
	testpeer.MustWHIPPublisher(t, srv, pub, room, testpeer.WHIPOptions{Query: url.Values{"email": {room}}})

	low := testpeer.MustWHEPViewer(t, srv, nil, room, testpeer.WHIPOptions{Query: url.Values{"layer": {"l"}}})
	top := testpeer.MustWHEPViewer(t, srv, nil, room, testpeer.WHIPOptions{})
	ws := testpeer.MustViewer(t, srv, "wsviewer@example.com", room, testpeer.ViewerOptions{})
	onLayer := func(vp *testpeer.ViewerPeer, name string, layer int) {
		t.Helper()
		if err := vp.WaitLayer(ctx, name, layer); err != nil {
			t.Fatal(err)
		}
	}
	onLayer(low.Peer, "the ?layer=l viewer on the low layer", 0)
	onLayer(top.Peer, "the unpinned WHEP viewer on the top layer", 2)
	onLayer(ws.Peer, "the WebSocket viewer on the top layer", 2)

	setLayer := func(layer, want string) {
		t.Helper()
		if err := ws.WS.Send(map[string]string{"id": "setLayer", "layer": layer}); err != nil {
			t.Fatal(err)
		}
		m, err := ws.WS.NextWithin(timeout, "setLayerResponse")
		if err != nil {
			t.Fatal(err)
		}
		if m.Response != want {
			t.Fatalf("setLayer %q: %s, want response %s", layer, m.Raw, want)
		}
	}
	setLayer("m", "accepted")
	onLayer(ws.Peer, "the WebSocket viewer pinned to m", 1)
	setLayer("x", "rejected")
	setLayer("auto", "accepted")
	onLayer(ws.Peer, "the WebSocket viewer back on the top layer", 2)
	for _, v := range []*testpeer.ViewerPeer{low.Peer, top.Peer, ws.Peer} {
		if err := v.Check(); err != nil {
			t.Error(err)
		}
	}

	eps, err := srv.REST.Endpoints(room)
	if err != nil {
		t.Fatal(err)
	}
	layers := map[string]int{}
	for _, ep := range eps {
		layers[ep.Stats.Layer]++
		if ep.Stats.Layer == "l" && !ep.Stats.LayerPinned {
			t.Errorf("the ?layer=l viewer is not shown pinned: %+v", ep.Stats)
		}
	}
	if layers["l"] != 1 || layers["h"] != 2 {
		t.Errorf("/media/endpoints layers %v, want one l and two h: %+v", layers, eps)
	}
	fams := scrapeMetrics(t, srv)
	if got, ok := metricValue(fams, "onair_media_layer_switches_total"); !ok || got < 2 {
		t.Errorf("onair_media_layer_switches_total = %v (present %v), want at least 2", got, ok)
	}

	vp, err := testpeer.NewViewerPeer()
	if err != nil {
		t.Fatal(err)
	}
	defer vp.Close()
	_, err = vp.WatchWHEP(ctx, srv.WHIP(), room, testpeer.WHIPOptions{Query: url.Values{"layer": {"top"}}})
	var he *testpeer.HTTPError
	if !errors.As(err, &he) || he.Response.Status != http.StatusBadRequest ||
		!strings.Contains(string(he.Response.Body), "layer") {
		t.Errorf("WHEP ?layer=top: %v, want 400 naming the layer", err)
	}
}
