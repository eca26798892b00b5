package sfu

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Simulcast in: a presenter may send its video as up to maxLayers RID
// layers (a=simulcast, a=rid, the mid/rid header extensions, RTX with
// repaired-rid). Each layer is an upTrack of its own, with its own history,
// keyframe cache and PLI throttle; they share a layerGroup. The pipeline
// publishes the top layer as the video track (recorders take it), and each
// viewer's downTrack moves between the layers (layer.go).

// maxLayers is how many simulcast layers are forwarded; further RIDs are
// read and dropped.
const maxLayers = 3

// layerGroup is a simulcast video's layers, lowest first.
type layerGroup struct {
	layers []*upTrack
}

func (g *layerGroup) top() *upTrack { return g.layers[len(g.layers)-1] }

// ridSchemes are the layer names encoders use, lowest first.
var ridSchemes = [][]string{
	{"l", "m", "h"},
	{"q", "h", "f"},
	{"low", "mid", "high"},
	{"low", "medium", "high"},
}

// orderLayers sorts a section's RIDs lowest layer first: by name when they
// follow a known scheme (l/m/h, q/h/f, low/mid/high), else in the offer's
// order, taken as lowest first. At most maxLayers are kept (the first ones).
func orderLayers(rids []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rids {
		if !seen[r] && len(out) < maxLayers {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, scheme := range ridSchemes {
		rank := map[string]int{}
		for i, n := range scheme {
			rank[n] = i
		}
		ok := true
		for _, r := range out {
			if _, known := rank[strings.ToLower(r)]; !known {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		sorted := make([]string, 0, len(out))
		for _, n := range scheme {
			for _, r := range out {
				if strings.ToLower(r) == n {
					sorted = append(sorted, r)
				}
			}
		}
		return sorted
	}
	return out
}

// parseRid reads an a=rid value, "h send pt=96;max-width=1280", and returns
// the RID of a send stream.
func parseRid(v string) (string, bool) {
	f := strings.Fields(v)
	if len(f) < 2 || f[1] != "send" || f[0] == "" || len(f[0]) > 16 {
		return "", false
	}
	return f[0], true
}

// parseRtxRtpmap reads "97 rtx/90000".
func parseRtxRtpmap(v string) (uint8, bool) {
	ptStr, enc, ok := strings.Cut(v, " ")
	if !ok {
		return 0, false
	}
	pt, err := strconv.ParseUint(ptStr, 10, 8)
	if err != nil {
		return 0, false
	}
	name, _, _ := strings.Cut(strings.TrimSpace(enc), "/")
	return uint8(pt), strings.EqualFold(name, "rtx")
}

// simulcastRIDs returns a video section's layers, lowest first, or nil when
// it does not send simulcast.
func simulcastRIDs(sec offeredSection) []string {
	if sec.kind != webrtc.RTPCodecTypeVideo || !sec.simulcast || len(sec.rids) < 2 {
		return nil
	}
	return orderLayers(sec.rids)
}

// newLayers makes one upTrack per RID, lowest first, sharing a group.
func newLayers(ep *Endpoint, c webrtc.RTPCodecParameters, exts map[string]uint8, rids []string) *layerGroup {
	g := &layerGroup{}
	for i, rid := range rids {
		t := newUpTrack(ep, webrtc.RTPCodecTypeVideo, c, exts)
		t.rid, t.layer, t.group = rid, int8(i), g
		t.rate = &rateMeter{}
		g.layers = append(g.layers, t)
	}
	return g
}

// rtxCodec is the RTX codec for a media payload type.
func rtxCodec(apt, pt uint8) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=" + strconv.Itoa(int(apt)),
		},
		PayloadType: webrtc.PayloadType(pt),
	}
}

// trackFor finds the published track a presenter's remote track feeds: by
// RID for simulcast layers, else the first of its kind not yet started.
func trackFor(tracks []*upTrack, remote *webrtc.TrackRemote) *upTrack {
	for _, t := range tracks {
		if t.kind == remote.Kind() && t.ssrc.Load() == 0 && (t.rid == remote.RID() || t.group == nil) {
			return t
		}
	}
	return nil
}

// rateMeter measures a track's bitrate over windows of rateWindow. Its add
// is called by the track's read loop under the track's mutex.
type rateMeter struct {
	start   time.Time
	bytes   int
	bps     atomic.Int64
	updated atomic.Int64 // when bps was last set, in Unix nanoseconds
	first   atomic.Int64 // when the first packet came, in Unix nanoseconds
}

const rateWindow = 500 * time.Millisecond

func (m *rateMeter) add(n int, now time.Time) {
	if m.start.IsZero() {
		m.start = now
		m.first.Store(now.UnixNano())
	}
	m.bytes += n
	if d := now.Sub(m.start); d >= rateWindow {
		bps := int64(float64(m.bytes*8) / d.Seconds())
		// smooth a little: frames are bursty, keyframes large
		if old := m.bps.Load(); old > 0 {
			bps = (old + bps) / 2
		}
		m.bps.Store(bps)
		m.updated.Store(now.UnixNano())
		m.start, m.bytes = now, 0
	}
}

// bitrate is the track's bitrate in bit/s: 0 before a window has passed,
// and once the track has been silent for a second (a layer the presenter
// paused).
func (t *upTrack) bitrate() int64 {
	if t.rate == nil || time.Since(time.Unix(0, t.rate.updated.Load())) > time.Second {
		return 0
	}
	return t.rate.bps.Load()
}

// measureAudio has a simulcast broadcast's audio track measure its bitrate
// too: a viewer's layer must leave room for it.
func measureAudio(all []*upTrack) {
	simulcast := false
	for _, t := range all {
		simulcast = simulcast || t.group != nil
	}
	for _, t := range all {
		if simulcast && t.kind == webrtc.RTPCodecTypeAudio {
			t.rate = &rateMeter{}
		}
	}
}

// layerWait bounds how long a recorder waits to see which simulcast layers
// flow.
const layerWait = 3 * time.Second

// recordedLayers returns the tracks a recorder takes: a simulcast video's
// top layer that flows. The top layer is the published one, but a browser
// whose camera is small sends fewer layers than it offered (Chromium drops
// the top ones), and a recording of a layer that never comes would be
// empty; so the recorder waits for the top layer to flow (at most
// layerWait) and else takes the highest that does. It keeps that layer.
// nil if done closes first.
func recordedLayers(ups []*upTrack, done <-chan struct{}) []*upTrack {
	var g *layerGroup
	for _, t := range ups {
		if t.group != nil {
			g = t.group
		}
	}
	if g == nil {
		return ups
	}
	deadline := time.NewTimer(layerWait)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for g.top().bitrate() == 0 {
		select {
		case <-done:
			return nil
		case <-deadline.C:
			break wait
		case <-tick.C:
		}
	}
	best := g.flowing()
	if best == nil {
		best = g.top()
	}
	out := make([]*upTrack, len(ups))
	for i, t := range ups {
		out[i] = t
		if t.group == g {
			out[i] = best
		}
	}
	return out
}

// flowing is the highest layer with a measured bitrate, or nil.
func (g *layerGroup) flowing() *upTrack {
	for i := len(g.layers) - 1; i >= 0; i-- {
		if g.layers[i].bitrate() > 0 {
			return g.layers[i]
		}
	}
	return nil
}

// layerStart is how long after a simulcast video's first packet a layer
// not measured yet may still be starting: layers do not start at the same
// instant (a relay pull's arrive one after the other), and a pin to one
// that is about to flow must not be moved off it.
const layerStart = 2 * rateWindow

// starting reports whether layer l has never been measured and the
// video's first packet came less than layerStart ago.
func (g *layerGroup) starting(l int8) bool {
	if g.layers[l].rate.updated.Load() != 0 {
		return false
	}
	var first int64
	for _, t := range g.layers {
		if f := t.rate.first.Load(); f != 0 && (first == 0 || f < first) {
			first = f
		}
	}
	return first == 0 || time.Since(time.Unix(0, first)) < layerStart
}

// sentNear is layer l if the presenter sends it (or nothing has been
// measured yet), else the highest layer below it that it sends, else the
// lowest above: where a viewer pinned to l is sent.
func (g *layerGroup) sentNear(l int8) int8 {
	if g.layers[l].bitrate() > 0 || g.flowing() == nil || g.starting(l) {
		return l
	}
	for i := l - 1; i >= 0; i-- {
		if g.layers[i].bitrate() > 0 {
			return i
		}
	}
	for i := l + 1; i < int8(len(g.layers)); i++ {
		if g.layers[i].bitrate() > 0 {
			return i
		}
	}
	return l
}
