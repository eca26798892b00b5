package sfu

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/media"
)

// relayHop is a node that pulls a broadcast from another: its own engine
// and pipeline, fed by a relay pull of the other's.
type relayHop struct {
	eng  *Engine
	mp   media.Pipeline
	pull *Endpoint
	out  *Endpoint // the relay endpoint at the node pulled from
}

// pullFrom starts a node that pulls from's broadcast, as the cluster does
// (an endpoint that sends every layer, named relay:name, at from).
func pullFrom(ctx context.Context, t *testing.T, from media.Pipeline, name string) *relayHop {
	t.Helper()
	eng, err := New(Config{Loopback: true, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	mp, err := eng.NewPipeline("relayed")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := mp.NewEndpoint(media.Publisher, "relay pull", media.Events{})
	if err != nil {
		t.Fatal(err)
	}
	h := &relayHop{eng: eng, mp: mp, pull: ep.(*Endpoint)}
	err = h.pull.Pull(ctx, func(ctx context.Context, offer string) (string, error) {
		out, err := from.NewEndpoint(media.Subscriber, "relay:"+name, media.Events{})
		if err != nil {
			return "", err
		}
		h.out = out.(*Endpoint)
		h.out.RelayLayers()
		return h.out.ProcessOfferGathered(ctx, offer)
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A relay pull of a simulcast broadcast carries every layer: the viewers
// of the node that pulls, and of a node that pulls from it, each get the
// layer they pin, and move between layers, as at the origin.
func TestRelaySimulcastLayers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := newSCRoom(ctx, t)
	edge := pullFrom(ctx, t, r.mp, "edge")
	leaf := pullFrom(ctx, t, edge.mp, "leaf")

	var vs []*scViewer
	viewer := func(mp media.Pipeline, name, layer string) *scViewer {
		v := newSCViewer(ctx, t, mp, name, 0, layer)
		vs = append(vs, v)
		return v
	}
	t.Cleanup(func() {
		for _, v := range vs {
			v.close()
		}
	})
	low := viewer(edge.mp, "edge low", "l")
	high := viewer(edge.mp, "edge high", "h")
	leafLow := viewer(leaf.mp, "leaf low", "l")
	waitLayer(t, low, 0, 15*time.Second, "edge viewer pinned to l")
	waitLayer(t, high, 2, 15*time.Second, "edge viewer pinned to h")
	waitLayer(t, leafLow, 0, 15*time.Second, "leaf viewer pinned to l")

	// A node of an older version offers one video section: it is sent the
	// top layer.
	older := newSCViewerWith(ctx, t, r.mp, "relay:older", 0, (*Endpoint).RelayLayers)
	vs = append(vs, older)
	waitLayer(t, older, 2, 15*time.Second, "a relay that offers one video")
	if s := older.ep.Stats(); s.Layer != "h" || s.Layers != nil {
		t.Errorf("a relay that offers one video: stats %+v", s)
	}

	for _, ep := range []*Endpoint{edge.out, edge.pull, leaf.out, leaf.pull} {
		if got := fmt.Sprint(ep.Stats().Layers); got != "[l m h]" {
			t.Errorf("%s: layers %s, want [l m h]", ep.Name(), got)
		}
	}
	if s := low.ep.Stats(); s.Layer != "l" || !s.LayerPinned {
		t.Errorf("edge viewer pinned to l: stats %+v", s)
	}

	// A pin moves a viewer behind two hops: the keyframe it needs is asked
	// up the chain, for that layer.
	for _, step := range []struct {
		layer string
		rank  int
	}{{"m", 1}, {"h", 2}, {"l", 0}} {
		if err := leafLow.ep.SetLayer(step.layer); err != nil {
			t.Fatal(err)
		}
		took := waitLayer(t, leafLow, step.rank, 10*time.Second, "leaf viewer pinned to "+step.layer)
		t.Logf("leaf viewer pinned to %s: switched in %s", step.layer, took.Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)
	checkSwitches(t, low, "edge low", 0)
	checkSwitches(t, high, "edge high", 0)
	if n := checkSwitches(t, leafLow, "leaf viewer", 0); n != 3 {
		t.Errorf("leaf viewer switched %d times, want 3", n)
	}
	if n := checkSwitches(t, low, "edge low", 0); n != 0 {
		t.Errorf("edge viewer pinned to l switched %d times", n)
	}
}
