package sfu

import (
	"context"
	"fmt"
	"strings"
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
// (an endpoint named relay:name at from, that sends every layer if every
// is set, else the top one, as to a node of an older version).
func pullFrom(ctx context.Context, t *testing.T, from media.Pipeline, name string, every bool) *relayHop {
	t.Helper()
	h := newRelayHop(t)
	h.pullAgain(ctx, t, from, name, every)
	return h
}

// newRelayHop starts a node whose relay endpoint has not pulled yet.
func newRelayHop(t *testing.T) *relayHop {
	t.Helper()
	eng, mp := newLoopbackPipeline(t, Config{Logger: testLogger()}, "relayed")
	t.Cleanup(func() { _ = eng.Close() })
	ep, err := mp.NewEndpoint(media.Publisher, "relay pull", media.Events{})
	if err != nil {
		t.Fatal(err)
	}
	h := &relayHop{eng: eng, mp: mp, pull: ep.(*Endpoint)}
	return h
}

// pullAgain has h pull from from (again): as a node of this version if
// every is set, else as an older one, whose relay endpoint sends the top
// layer only. The relay endpoint of the last pull is released.
func (h *relayHop) pullAgain(ctx context.Context, t *testing.T, from media.Pipeline, name string, every bool) {
	t.Helper()
	old := h.out
	err := h.pull.Pull(ctx, func(ctx context.Context, offer string) (string, error) {
		out, err := from.NewEndpoint(media.Subscriber, "relay:"+name, media.Events{})
		if err != nil {
			return "", err
		}
		h.out = out.(*Endpoint)
		if every {
			h.out.RelayLayers()
		} else if err := h.out.SetLayer(LayerHigh); err != nil {
			return "", err
		}
		return h.out.ProcessOfferGathered(ctx, offer)
	})
	if err != nil {
		t.Fatal(err)
	}
	if old != nil {
		old.Release()
	}
}

// A relay pull of a simulcast broadcast carries every layer: the viewers
// of the node that pulls, and of a node that pulls from it, each get the
// layer they pin, and move between layers, as at the origin.
func TestRelaySimulcastLayers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := newSCRoom(ctx, t)
	edge := pullFrom(ctx, t, r.mp, "edge", true)
	leaf := pullFrom(ctx, t, edge.mp, "leaf", true)

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
	// On a loaded machine a viewer's socket drops bursts of the top layer,
	// and a simulcast viewer's resends are bounded (resendGuard): a burst
	// may stay lost. (The hops between nodes lose nothing here.)
	const maxGap = 150
	checkSwitches(t, high, "edge high", maxGap)
	if n := checkSwitches(t, leafLow, "leaf viewer", maxGap); n != 3 {
		t.Errorf("leaf viewer switched %d times, want 3: %v", n, leafLow.transitions())
	}
	if n := checkSwitches(t, low, "edge low", maxGap); n != 0 {
		t.Errorf("edge viewer pinned to l switched %d times", n)
	}
}

// A node that pulls again (its parent went away) feeds the same layers
// from the new connection: its viewers stay on their layers. Between nodes
// of two versions, the top layer feeds a plain video and back.
func TestRelaySimulcastPullAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := newSCRoom(ctx, t)
	edge := pullFrom(ctx, t, r.mp, "edge", true)
	older := pullFrom(ctx, t, r.mp, "older", false)

	low := newSCViewer(ctx, t, edge.mp, "edge low", 0, "l")
	plain := newSCViewer(ctx, t, older.mp, "older viewer", 0, "l") // no layers: the pin has no effect
	t.Cleanup(low.close)
	t.Cleanup(plain.close)
	waitLayer(t, low, 0, 15*time.Second, "edge viewer pinned to l")
	waitLayer(t, plain, 2, 15*time.Second, "viewer of a node pulling one video")

	more := func(v *scViewer, what string) {
		t.Helper()
		v.mu.Lock()
		from := v.packets
		v.mu.Unlock()
		if !waitUntil(15*time.Second, func() bool {
			v.mu.Lock()
			defer v.mu.Unlock()
			return v.packets > from+50
		}) {
			t.Fatalf("%s: no more media", what)
		}
	}
	edge.pullAgain(ctx, t, r.mp, "edge", true)
	more(low, "edge viewer after a pull again")
	if l := low.layer(); l != 0 {
		t.Errorf("edge viewer after a pull again: on layer %d, want 0", l)
	}
	older.pullAgain(ctx, t, r.mp, "older", true) // the top layer feeds the plain video
	more(plain, "viewer of a plain video fed by the top layer")
	if got := fmt.Sprint(older.pull.Stats().Layers); got != "[]" {
		t.Errorf("a pull that began with one video: layers %s, want none", got)
	}
	edge.pullAgain(ctx, t, r.mp, "edge", false) // the plain video feeds the top layer
	if err := low.ep.SetLayer(LayerHigh); err != nil {
		t.Fatal(err)
	}
	waitLayer(t, low, 2, 15*time.Second, "edge viewer pinned to h, its node pulling one video")
	more(low, "edge viewer fed by a plain video")
	if l := plain.layer(); l != 2 {
		t.Errorf("viewer of the plain video: on layer %d, want 2", l)
	}
}

// transitions lists the layers v was sent, each with when its first
// packet came.
func (v *scViewer) transitions() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	lo := v.maxSeq
	for s := range v.got {
		lo = min(lo, s)
	}
	var out []string
	layer := -2
	for s := lo; s <= v.maxSeq; s++ {
		if p, ok := v.got[s]; ok && p.layer != layer {
			out = append(out, fmt.Sprintf("%d@%s", p.layer, p.at.Format("05.000")))
			layer = p.layer
		}
	}
	return out
}

// A pull whose first answer cannot be applied, pulled again, publishes the
// broadcast as a first pull would: one video, whose viewers choose a layer.
func TestRelaySimulcastFirstPullFailed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := newSCRoom(ctx, t)
	h := newRelayHop(t)
	err := h.pull.Pull(ctx, func(ctx context.Context, offer string) (string, error) {
		out, err := r.mp.NewEndpoint(media.Subscriber, "relay:broken", media.Events{})
		if err != nil {
			return "", err
		}
		h.out = out.(*Endpoint)
		h.out.RelayLayers()
		answer, err := h.out.ProcessOfferGathered(ctx, offer)
		// without its fingerprint, the answer cannot be applied
		return strings.ReplaceAll(answer, "a=fingerprint:", "a=x-fingerprint:"), err
	})
	if err == nil {
		t.Fatal("an answer without a fingerprint was applied")
	}
	h.pullAgain(ctx, t, r.mp, "edge", true)

	tracks, err := h.mp.(*Pipeline).publishedTracks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 2 {
		t.Errorf("%d tracks published, want 2 (audio, and the video's top layer)", len(tracks))
	}
	low := newSCViewer(ctx, t, h.mp, "edge low", 0, "l")
	t.Cleanup(low.close)
	waitLayer(t, low, 0, 15*time.Second, "edge viewer pinned to l")
}
