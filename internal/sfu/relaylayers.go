package sfu

import (
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
)

// Every simulcast layer through a relay. A node that pulls a broadcast
// (relay.go) offers an audio section and maxLayers video sections. The
// node pulled from sends a simulcast video's layers each in a video
// section of its own, as a track named video-l, video-m or video-h (the
// section's a=msid), lowest first; a section it does not need is
// inactive. Each layer goes to the relay through a downTrack of its own,
// without a layer selector: it is that layer's stream, its sequence
// numbers and timestamps unchanged, its NACKs answered from that layer's
// history and its PLIs sent to that layer's source. The pulling node
// makes the layers a layerGroup again (relayLayerTracks), so its viewers
// each get their own layer, as at the origin, and a node that pulls from
// it gets every layer in turn.
//
// A broadcast without simulcast is relayed as before: one audio and one
// video section, the others inactive. A relay whose offer has fewer video
// sections than there are layers (a node of an older version) is sent the
// top layer, as a viewer pinned to h.

// relayLayerPrefix starts the track id of a layer sent to a relay.
const relayLayerPrefix = "video-"

// RelayLayers implements media.LayerRelayer.
func (e *Endpoint) RelayLayers() {
	if e.role != media.Subscriber {
		return
	}
	e.relayAll.Store(true)
	e.pin.Store(maxLayers) // the top layer (rank maxLayers-1, plus one), if not every layer
}

var _ media.LayerRelayer = (*Endpoint)(nil)

// relayedTracks returns the tracks to send a viewer: for a relay sent every
// layer whose offer has a video section for each, a simulcast video's
// layers in place of its top one (perLayer then tells so).
func (e *Endpoint) relayedTracks(tracks []*upTrack, sections []offeredSection) []*upTrack {
	if !e.relayAll.Load() {
		return tracks
	}
	video := 0
	for _, sec := range sections {
		if sec.kind == webrtc.RTPCodecTypeVideo && sec.direction != "inactive" && sec.direction != "sendonly" {
			video++
		}
	}
	var out []*upTrack
	for _, t := range tracks {
		if t.group != nil && len(t.group.layers) <= video {
			out = append(out, t.group.layers...)
			continue
		}
		out = append(out, t)
	}
	return out
}

// publishedOf is what a pipeline publishes of an endpoint's tracks: a
// simulcast video's top layer stands for its group.
func publishedOf(all []*upTrack) []*upTrack {
	var out []*upTrack
	for _, t := range all {
		if t.group == nil || t == t.group.top() {
			out = append(out, t)
		}
	}
	return out
}

// perLayer reports whether tracks are a simulcast video's layers, each
// sent as a track of its own (to a relay, whose link is not estimated).
func perLayer(tracks []*upTrack) bool {
	for _, t := range tracks {
		if t.group != nil && t != t.group.top() {
			return true
		}
	}
	return false
}

// trackID names a viewer's track in its answer: audio, video, or a layer
// sent to a relay, video-l, video-m or video-h.
func (d *downTrack) trackID() string {
	if d.up.group != nil && d.sel == nil {
		return relayLayerPrefix + layerName(d.up.layer, int8(len(d.up.group.layers)))
	}
	return d.up.kind.String()
}

// relayLayerNames lists the layers of a simulcast video an endpoint
// carries: a relay's, or a publisher's (a presenter's, or a relay pull's),
// lowest first; nil for none.
func (e *Endpoint) relayLayerNames() []string {
	e.mu.Lock()
	sub, tracks := e.sub, e.tracks
	e.mu.Unlock()
	if sub != nil {
		tracks = nil
		for _, d := range sub.downs {
			if d.up.group != nil && d.sel == nil {
				tracks = append(tracks, d.up)
			}
		}
	}
	var out []string
	for _, t := range tracks {
		if t.group != nil {
			out = append(out, layerName(t.layer, int8(len(t.group.layers))))
		}
	}
	return out
}

// pulledSections reads a relay's answer: the sections that carry media (a
// track id, not inactive), the plain ones and those of a simulcast
// video's layers, by layer name, in the answer's order.
func pulledSections(answer string) (plain, layers []offeredSection, err error) {
	sections, err := parseOffer(answer)
	if err != nil {
		return nil, nil, err
	}
	seen := map[webrtc.RTPCodecType]bool{}
	for _, sec := range sections {
		if len(sec.codecs) == 0 || sec.track == "" || sec.direction == "inactive" || sec.direction == "recvonly" {
			continue
		}
		if _, ok := strings.CutPrefix(sec.track, relayLayerPrefix); ok && sec.kind == webrtc.RTPCodecTypeVideo {
			layers = append(layers, sec)
			continue
		}
		if !seen[sec.kind] {
			seen[sec.kind] = true
			plain = append(plain, sec)
		}
	}
	if len(layers) == 1 { // one layer is a plain video
		plain, layers = append(plain, layers[0]), nil
	}
	return plain, layers, nil
}

// sectionRID is a layer section's layer name.
func sectionRID(sec offeredSection) string {
	return strings.TrimPrefix(sec.track, relayLayerPrefix)
}

// newRelayTracks makes a first pull's tracks: those to publish (a
// simulcast video's top layer), every one, and each section's by mid.
func (e *Endpoint) newRelayTracks(plain, layers []offeredSection) (published, all []*upTrack, byMid map[string]*upTrack) {
	byMid = map[string]*upTrack{}
	for _, sec := range plain {
		t := newUpTrack(e, sec.kind, codecParams(sec.codecs[0], sec.kind, true), forwardedIDs(sec))
		published, all = append(published, t), append(all, t)
		byMid[sec.mid] = t
	}
	if len(layers) > 0 {
		var rids []string
		for _, sec := range layers {
			rids = append(rids, sectionRID(sec))
		}
		rids = orderLayers(rids)
		first := layers[0]
		g := newLayers(e, codecParams(first.codecs[0], first.kind, true), forwardedIDs(first), rids)
		for _, t := range g.layers {
			for _, sec := range layers {
				if sectionRID(sec) == t.rid {
					byMid[sec.mid] = t
				}
			}
		}
		published, all = append(published, g.top()), append(all, g.layers...)
	}
	measureAudio(all)
	return published, all, byMid
}

// againRelayTracks finds a pull's tracks again in the answer of a new
// node pulled from, by kind and layer. A plain video feeds a simulcast
// video's top layer, and the top layer a plain video, when the two nodes
// differ (versions of onair). Sections of tracks it cannot find are not
// read.
func againRelayTracks(have []*upTrack, plain, layers []offeredSection) (map[string]*upTrack, error) {
	byMid := map[string]*upTrack{}
	var (
		g          *layerGroup
		plainVideo *upTrack
		audio      *upTrack
	)
	for _, t := range have {
		switch {
		case t.group != nil:
			g = t.group
		case t.isVideo:
			plainVideo = t
		default:
			audio = t
		}
	}
	var rids []string
	for _, sec := range layers {
		rids = append(rids, sectionRID(sec))
	}
	rids = orderLayers(rids)
	for i, sec := range append(plain, layers...) {
		var t *upTrack
		switch rid := sectionRID(sec); {
		case sec.kind == webrtc.RTPCodecTypeAudio:
			t = audio
		case i < len(plain) && plainVideo != nil:
			t = plainVideo
		case i < len(plain) && g != nil:
			t = g.top()
		case g != nil: // a layer
			for _, l := range g.layers {
				if l.rid == rid {
					t = l
				}
			}
		case rid == rids[len(rids)-1]:
			t = plainVideo
		}
		if t == nil {
			continue
		}
		if mime := codecParams(sec.codecs[0], sec.kind, true).MimeType; mime != t.codec.MimeType {
			return nil, fmt.Errorf("%w: the relay source now sends %s, not %s", media.ErrIncompatible, mime, t.codec.MimeType)
		}
		byMid[sec.mid] = t
	}
	return byMid, nil
}
