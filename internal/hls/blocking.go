package hls

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Blocking playlist reloads. A player that has the last part of a segment
// asks for the next part of the same segment (_HLS_msn=N&_HLS_part=P+1),
// not knowing that the segment will end there; the LL-HLS rules say the
// server must then answer with part 0 of segment N+1. gohlslib (up to
// v2.4.0) waits instead until segment N+1 is complete, a whole segment
// late, so players stall at every segment boundary. onair therefore waits
// itself: one poller per room reads the playlist every pollInterval while
// requests wait, and a waiting request is handed to gohlslib, with the
// part it asked for moved to the next segment where needed, once that part
// exists (gohlslib then answers at once).

// pollInterval bounds what the poller adds to a blocking request's wait.
const pollInterval = 20 * time.Millisecond

// partState is where the leading playlist is: the open segment and its
// parts, and the parts of the complete segments it lists.
type partState struct {
	open      int         // media sequence number of the open segment
	openParts int         // parts of the open segment
	parts     map[int]int // parts of each complete segment listed with its parts
}

// resolve says whether the part (msn, part) exists, and which part to ask
// gohlslib for: the same, or part 0 of a later segment if msn ended before
// part.
func (s *partState) resolve(msn, part int) (int, int, bool) {
	if s.open >= 0 && msn > s.open+1 {
		return msn, part, true // too far ahead: gohlslib answers 400
	}
	for msn < s.open {
		n, listed := s.parts[msn]
		if !listed || part < n {
			return msn, part, true
		}
		msn, part = msn+1, 0
	}
	if msn == s.open && part < s.openParts {
		return msn, part, true
	}
	return msn, part, false
}

// parsePartState reads a media playlist.
func parsePartState(pl []byte) *partState {
	s := &partState{parts: map[int]int{}}
	msn, parts := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(pl))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			msn, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			parts++
		case strings.HasPrefix(l, "#EXTINF:"):
			if parts > 0 {
				s.parts[msn] = parts
			}
			msn, parts = msn+1, 0
		}
	}
	s.open, s.openParts = msn, parts
	return s
}

// poller keeps a room's partState fresh while requests wait.
type poller struct {
	st       *stream
	playlist string // the leading media playlist

	mu      sync.Mutex
	state   *partState
	changed chan struct{} // closed and replaced when state changes
	waiters int
	wake    chan struct{} // a first waiter arrived
	done    chan struct{}
}

func newPoller(st *stream, playlist string) *poller {
	return &poller{st: st, playlist: playlist, state: &partState{open: -1}, changed: make(chan struct{}),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// run polls while there are waiters, until stop.
func (p *poller) run(stop <-chan struct{}) {
	defer close(p.done)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		p.mu.Lock()
		idle := p.waiters == 0
		p.mu.Unlock()
		if idle {
			select {
			case <-p.wake:
			case <-stop:
				return
			}
		}
		p.poll()
		select {
		case <-tick.C:
		case <-stop:
			return
		}
	}
}

// poll reads the leading playlist (without blocking parameters: gohlslib
// answers at once once the stream has content) and publishes its state.
func (p *poller) poll() {
	w := &bufferWriter{header: http.Header{}}
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/" + p.playlist}, Header: http.Header{}}
	p.st.muxer.Handle(w, r)
	if w.status != http.StatusOK {
		return
	}
	s := parsePartState(w.body.Bytes())
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.open != p.state.open || s.openParts != p.state.openParts {
		p.state = s
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// await waits until part (msn, part) exists and returns the part to ask
// gohlslib for; ok is false if done ends first.
func (p *poller) await(msn, part int, done, closed <-chan struct{}) (int, int, bool) {
	p.mu.Lock()
	p.waiters++
	if p.waiters == 1 {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiters--
		p.mu.Unlock()
	}()
	for {
		p.mu.Lock()
		m, n, ok := p.state.resolve(msn, part)
		changed := p.changed
		p.mu.Unlock()
		if ok {
			return m, n, true
		}
		select {
		case <-changed:
		case <-done:
			return 0, 0, false
		case <-closed:
			return 0, 0, false
		}
	}
}

// bufferWriter collects a response in memory.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.header }
func (w *bufferWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *bufferWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// blockingRequest waits for the part a blocking playlist request asks for
// and returns the request to hand to gohlslib (asking for the part that
// exists), or nil if the stream ended or the client left meanwhile. A
// request whose parameters do not parse goes to gohlslib as it is (400).
func (st *stream) blockingRequest(r *http.Request) *http.Request {
	q := r.URL.Query()
	msn, err1 := strconv.Atoi(q.Get("_HLS_msn"))
	part, err2 := strconv.Atoi(q.Get("_HLS_part"))
	if q.Get("_HLS_part") == "" {
		part, err2 = 0, nil
	}
	if err1 != nil || err2 != nil || msn < 0 || part < 0 {
		return r
	}
	m, n, ok := st.poller.await(msn, part, r.Context().Done(), st.closed)
	if !ok {
		return nil
	}
	if m == msn && n == part {
		return r
	}
	q.Set("_HLS_msn", strconv.Itoa(m))
	q.Set("_HLS_part", strconv.Itoa(n))
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	return r2
}
