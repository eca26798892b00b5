package sfu

import (
	"fmt"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
)

// BenchmarkForwardSimulcast is BenchmarkForward for viewers of a simulcast
// broadcast, on its top layer: each packet is also mapped into the viewer's
// own numbering (layer.go).
func BenchmarkForwardSimulcast(b *testing.B) {
	for _, viewers := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) {
			up, subs, stop := benchLayeredTrack(b, viewers)
			defer stop()
			benchForward(b, up, subs)
		})
	}
}

// benchLayeredTrack is benchTrack for a three-layer simulcast video: it
// returns the top layer, whose viewers have layer selectors (without an
// estimator: they stay where they start).
func benchLayeredTrack(b testing.TB, n int) (*upTrack, []*subscriber, func()) {
	b.Helper()
	e, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	p := newPipeline(e, "bench", "bench")
	pub := newEndpoint(p, media.Publisher, "presenter:bench", media.Events{})
	c := codecParams(offeredCodec{pt: 96, mime: "video/VP8", clock: 90000}, webrtc.RTPCodecTypeVideo, true)
	g := newLayers(pub, c, map[string]uint8{"urn:3gpp:video-orientation": 3}, []string{"l", "m", "h"})
	up := g.top()
	subs, stop := benchViewers(p, up, n, g)
	return up, subs, stop
}
