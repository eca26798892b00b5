package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HLS viewers (-protocol hls): each reads the room's Low-Latency HLS as a
// player does, but without decoding: the multivariant playlist once, then
// for the video and the audio playlist, blocking reloads
// (_HLS_msn/_HLS_part) and every new part. The publisher's stamps are
// found in the parts' samples: their age when the part arrives is the
// glass-to-player latency (a player adds its hold-back, PART-HOLD-BACK,
// before showing them), and their frame numbers count lost frames.

// hlsPart is one part listed in a media playlist.
type hlsPart struct {
	msn, index int
	uri        string
}

// parseMediaPlaylist lists a media playlist's parts, in order.
func parseMediaPlaylist(pl []byte) []hlsPart {
	var parts []hlsPart
	msn, index := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(pl))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			msn, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			if u := hlsAttr(strings.TrimPrefix(l, "#EXT-X-PART:"), "URI"); u != "" {
				parts = append(parts, hlsPart{msn: msn, index: index, uri: u})
			}
			index++
		case strings.HasPrefix(l, "#EXTINF:"):
			msn, index = msn+1, 0
		}
	}
	return parts
}

// partHoldBackMs reads a media playlist's PART-HOLD-BACK, in ms.
func partHoldBackMs(pl []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(pl))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "#EXT-X-SERVER-CONTROL:"); ok {
			f, _ := strconv.ParseFloat(hlsAttr(v, "PART-HOLD-BACK"), 64)
			return int64(f * 1000)
		}
	}
	return 0
}

// hlsAttr reads one attribute of a tag's attribute list.
func hlsAttr(attrs, name string) string {
	for len(attrs) > 0 {
		var kv string
		if i := strings.IndexByte(attrs, '='); i >= 0 && i+1 < len(attrs) && attrs[i+1] == '"' {
			end := strings.IndexByte(attrs[i+2:], '"')
			if end < 0 {
				return ""
			}
			kv, attrs = attrs[:i+2+end+1], strings.TrimPrefix(attrs[i+2+end+1:], ",")
		} else if j := strings.IndexByte(attrs, ','); j >= 0 {
			kv, attrs = attrs[:j], attrs[j+1:]
		} else {
			kv, attrs = attrs, ""
		}
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// mediaPlaylists reads the multivariant playlist's video and audio
// playlists.
func mediaPlaylists(pl []byte) (video, audio string) {
	sc := bufio.NewScanner(bytes.NewReader(pl))
	afterInf := false
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA:") && strings.Contains(l, "TYPE=AUDIO"):
			audio = hlsAttr(strings.TrimPrefix(l, "#EXT-X-MEDIA:"), "URI")
		case strings.HasPrefix(l, "#EXT-X-STREAM-INF:"):
			afterInf = true
		case afterInf && l != "" && !strings.HasPrefix(l, "#"):
			video, afterInf = l, false
		}
	}
	return video, audio
}

// behind is a 400 (a segment no longer in the playlist) or a 404 (an
// expired part): a reader that fell behind the live edge.
type behind struct{ msg string }

func (b *behind) Error() string { return b.msg }

// hlsGet fetches one URL of the room's HLS.
func (v *viewer) hlsGet(ctx context.Context, name string, q url.Values) ([]byte, error) {
	u := v.r.c.root.String() + "/hls/" + url.PathEscape(v.r.o.Room) + "/" + name
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "onair-loadtest/"+v.email)
	if tok := v.r.c.tokens.of(v.email); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := v.hlsHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound {
		return nil, &behind{fmt.Sprintf("GET %s: %d %s", name, resp.StatusCode, strings.TrimSpace(string(body)))}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", name, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// connectHLS reads the multivariant playlist and starts following the
// media playlists; it returns once the first part has arrived.
func (v *viewer) connectHLS(ctx context.Context) error {
	// Each viewer has connections of its own, as separate players do.
	tr := v.r.c.http.Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	v.hlsHTTP = &http.Client{Transport: tr}
	v.joinStart = time.Now()
	mv, err := v.hlsGet(ctx, "index.m3u8", nil)
	if err != nil {
		return err
	}
	video, audio := mediaPlaylists(mv)
	if video == "" {
		return errors.New("no video playlist in index.m3u8")
	}
	v.answerAt.Store(time.Now().UnixNano())
	fctx, cancel := context.WithCancel(context.Background())
	v.mu.Lock()
	v.stopHLS = cancel
	v.mu.Unlock()
	v.readers.Add(1)
	go v.followHLS(fctx, video, true)
	if audio != "" {
		v.readers.Add(1)
		go v.followHLS(fctx, audio, false)
	}
	select {
	case <-v.connected:
		return nil
	case <-v.down:
		return errors.New("HLS stream failed")
	case <-ctx.Done():
		return fmt.Errorf("first HLS part: %w", ctx.Err())
	}
}

// followHLS reads a media playlist from its newest part on, with blocking
// reloads, and every part after that, until ctx ends or the stream fails.
func (v *viewer) followHLS(ctx context.Context, name string, isVideo bool) {
	defer v.readers.Done()
	var q url.Values
	next := hlsPart{msn: -1}
	for ctx.Err() == nil {
		pl, err := v.hlsGet(ctx, name, q)
		if errors.As(err, new(*behind)) && q != nil {
			next, q = hlsPart{msn: -1}, nil // fell behind the playlist: back to the live edge, as players do
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				v.hlsFailed(err)
			}
			return
		}
		parts := parseMediaPlaylist(pl)
		if len(parts) == 0 {
			v.hlsFailed(fmt.Errorf("%s lists no part", name))
			return
		}
		if next.msn < 0 {
			next = parts[len(parts)-1] // the live edge
			v.r.hlsHoldBackMs.CompareAndSwap(0, partHoldBackMs(pl))
		}
		for _, p := range parts {
			if p.msn < next.msn || p.msn == next.msn && p.index < next.index {
				continue
			}
			body, err := v.hlsGet(ctx, p.uri, nil)
			if errors.As(err, new(*behind)) {
				break // the part expired meanwhile: the next playlist moves on
			}
			if err != nil {
				if ctx.Err() == nil {
					v.hlsFailed(err)
				}
				return
			}
			v.gotPart(body, isVideo)
			next = hlsPart{msn: p.msn, index: p.index + 1}
		}
		q = url.Values{"_HLS_msn": {strconv.Itoa(next.msn)}, "_HLS_part": {strconv.Itoa(next.index)}}
	}
}

// gotPart counts a part's frames by their stamps and records their age.
func (v *viewer) gotPart(b []byte, isVideo bool) {
	now := time.Now().UnixNano()
	if v.connectedAt.CompareAndSwap(0, now) {
		v.firstPacketAt.Store(now)
		v.firstKeyAt.Store(now) // an HLS stream starts at a keyframe
		v.state.CompareAndSwap(stateJoining, stateConnected)
		close(v.connected)
	}
	counter, hist := &v.audio, v.r.audioLatency
	if isVideo {
		counter, hist = &v.video, v.r.videoLatency
	}
	for {
		i := bytes.Index(b, stampMagic[:])
		if i < 0 {
			return
		}
		st, ok := getStamp(b[i:])
		if !ok {
			return
		}
		b = b[i+stampLen:]
		counter.add(uint16(st.frame), stampLen)
		if v.r.measuring.Load() {
			hist.add(time.Duration(now - st.sentNanos))
		}
	}
}

func (v *viewer) hlsFailed(err error) {
	v.downOnce.Do(func() { close(v.down) })
	if !v.leaving.Load() {
		v.markLost(err.Error())
	}
}
