package sfu

import (
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

// The viewers' send side is a small pool of writer goroutines, one per core
// by default (Config.Writers), each the owner of a shard of the viewers. A
// presenter's read loop hands each packet once to each shard that has
// viewers of the track (not once per viewer); the shard's writer, woken
// once per burst (burstState), sends every packet of the burst to each of
// its viewers in turn, as one batch of sends on the shard's own sockets
// (shardsock.go; udpbatch: each viewer's datagrams a GSO run, many viewers
// per sendmmsg), or with Config.SocketPerViewer one batch per viewer and
// frame on the viewer's sockets. Compared with a goroutine per viewer, the
// scheduler parks and wakes a few goroutines per burst instead of one per
// viewer, and the fan-out costs one channel send per shard.
//
// A writer never waits for one viewer: its sends do not block (a viewer's
// socket that is full drops the datagrams, counted in its Stats), and a
// shard's queue that is full drops the packet for that shard's viewers,
// counted in theirs.

// writerPool is the engine's shards. A shard's writer goroutine runs while
// the shard has viewers: it starts with the first and ends with the last,
// or when the engine closes, which waits for every writer.
type writerPool struct {
	e   *Engine
	n   int
	len int // each shard's queue length

	mu     sync.Mutex
	shards []*shard
	own    map[*shard]bool // shards of a single viewer (assign)
	closed bool
	wg     sync.WaitGroup
}

func newWriterPool(e *Engine) *writerPool {
	n := e.cfg.Writers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &writerPool{e: e, n: n, len: 4 * e.cfg.QueueLength}
}

// assign gives a viewer the least loaded shard, starting its writer if it
// has none, or with own a shard of its own; nil once the engine has closed.
// A viewer whose sockets are a shard's (home) is given that shard.
func (w *writerPool) assign(own bool, home *shard) *shard {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	var sh *shard
	switch {
	case own:
		sh = newShard(w, -1, w.e.cfg.QueueLength)
		if w.own == nil {
			w.own = map[*shard]bool{}
		}
		w.own[sh] = true
	case home != nil:
		sh = home
	default:
		w.makeShards()
		sh = w.shards[0]
		for _, x := range w.shards[1:] {
			if x.load < sh.load {
				sh = x
			}
		}
	}
	sh.load++
	if sh.stop == nil {
		w.start(sh)
	}
	return sh
}

func (w *writerPool) makeShards() {
	if w.shards == nil {
		for i := range w.n {
			w.shards = append(w.shards, newShard(w, i, w.len))
		}
	}
}

// reserve gives a viewer, when its peer connection is made, the shard whose
// socket it will be served on: the one with the fewest viewers, whose socket
// is opened if it has none.
func (w *writerPool) reserve() (*shard, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, media.ErrReleased
	}
	w.makeShards()
	best := w.shards[0]
	for _, sh := range w.shards[1:] {
		if sh.users < best.users {
			best = sh
		}
	}
	if best.sock == nil {
		if err := best.open(); err != nil {
			return nil, err
		}
	}
	best.users++
	return best, nil
}

// socketOf returns the sockets of a shard the caller holds a place on.
func (w *writerPool) socketOf(sh *shard) *shardSocket {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sh.sock
}

// unreserve gives back a viewer's place on its shard's socket, once its
// peer connection is closed; the last closes the socket.
func (w *writerPool) unreserve(sh *shard) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sh.users--
	if sh.users == 0 {
		sh.closeSocket()
	}
}

// open opens the shard's sockets. w.mu is held.
func (sh *shard) open() error {
	s, err := sh.pool.e.openShardSocket()
	if err != nil {
		return err
	}
	sh.sock = s
	sh.sockNet.Store(s.net)
	return nil
}

// closeSocket closes the shard's sockets. w.mu is held.
func (sh *shard) closeSocket() {
	if sh.sock != nil {
		st := sh.sock.net.Stats()
		sh.pool.e.log.Debug("writer's sockets closed", "shard", sh.idx, "datagrams", st.Datagrams,
			"sends", st.Sends, "gsoSends", st.GSOSends, "errors", st.Errors, "dropped", st.Dropped)
		sh.sock.close()
		sh.sock = nil
		sh.sockNet.Store(nil)
	}
}

// start runs a new writer for sh, which first waits for the one before to
// end: a shard's state is only ever one goroutine's. w.mu is held.
func (w *writerPool) start(sh *shard) {
	stop, prev, done := make(chan struct{}), sh.done, make(chan struct{})
	sh.stop, sh.done = stop, done
	w.wg.Go(func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		sh.run(stop)
	})
}

// release gives back a viewer's place in its shard, and stops the shard's
// writer when it was the last.
func (w *writerPool) release(sh *shard) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sh.load--
	if sh.load > 0 {
		return
	}
	if sh.stop != nil {
		close(sh.stop)
		sh.stop = nil
	}
	delete(w.own, sh)
}

// loads reports each shard's viewers (tests, stats).
func (w *writerPool) loads() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]int, len(w.shards))
	for i, sh := range w.shards {
		out[i] = sh.load
	}
	return out
}

// sockets reports how many shards have sockets open (shardsock.go), and
// what they sent (tests, stats).
func (w *writerPool) sockets() (open int, sent udpbatch.Stats) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, sh := range w.shards {
		if sh.sock == nil {
			continue
		}
		open++
		st := sh.sock.net.Stats()
		sent.Datagrams += st.Datagrams
		sent.Sends += st.Sends
		sent.GSOSends += st.GSOSends
		sent.Errors += st.Errors
		sent.Dropped += st.Dropped
		sent.GSO = sent.GSO || st.GSO
	}
	return open, sent
}

// close stops the writers and waits for them.
func (w *writerPool) close() {
	w.mu.Lock()
	w.closed = true
	for _, sh := range append(slices.Collect(maps.Keys(w.own)), w.shards...) {
		if sh.stop != nil {
			close(sh.stop)
			sh.stop = nil
		}
	}
	w.mu.Unlock()
	w.wg.Wait()
	w.mu.Lock()
	for _, sh := range w.shards {
		sh.closeSocket()
	}
	w.mu.Unlock()
}

// item is one entry of a shard's queue: a live packet for every viewer of a
// fan, or a packet for one viewer (a retransmission), or the start of a
// viewer's replay (replay.go).
type item struct {
	p  *packet
	to *fan
	d  *downTrack
	rp *replay
}

// fan is a track's viewers in one shard. It is never changed once made: a
// membership change makes a new one (upTrack.fans), so a packet queued
// with a fan goes to exactly the viewers the track had when it came.
type fan struct {
	sh    *shard
	downs []*downTrack
}

// shard is one writer goroutine and the state it alone touches.
type shard struct {
	pool      *writerPool
	idx       int
	queue     chan item
	wake      chan struct{} // holds a token when there is a burst to send
	perPacket bool
	// Guarded by pool.mu: the viewers assigned, and the running writer's
	// stop and the last writer's end (nil before the first).
	load       int
	stop, done chan struct{}
	// users are the viewers whose peer connections use the shard's
	// sockets (shardsock.go): opened for the first, closed after the last.
	users int
	sock  *shardSocket
	// sockNet is sock's sockets, which the writer batches its sends on.
	sockNet atomic.Pointer[udpbatch.Net]

	// The writer's own.
	active  []*subscriber // viewers with packets to send in this burst
	start   int           // rotates which viewer is sent to first
	replays []*downTrack  // viewers being replayed to
	ticker  *time.Ticker  // paces replays while there are any
	// The viewers sent sender reports (srreport.go), and the timer that
	// wakes the writer for the next due (set for reportAt; zero: stopped).
	reporters   reporters
	reportTimer *time.Timer
	reportAt    time.Time

	// Viewers to send sender reports to from now on, added by attach.
	joinMu sync.Mutex
	joins  []*subscriber
	joined atomic.Bool // joins is not empty
}

func newShard(w *writerPool, i, queueLen int) *shard {
	t := time.NewTicker(time.Hour)
	t.Stop()
	r := time.NewTimer(time.Hour)
	r.Stop()
	return &shard{pool: w, idx: i, queue: make(chan item, queueLen), wake: make(chan struct{}, 1),
		perPacket: w.e.cfg.SendPerPacket, ticker: t, reportTimer: r}
}

// push queues an item without waiting; false when the queue is full.
func (sh *shard) push(it item, wake bool) bool {
	select {
	case sh.queue <- it:
		if wake || sh.perPacket || len(sh.queue) >= wakeBacklog {
			sh.wakeup()
		}
		return true
	default:
		sh.wakeup()
		return false
	}
}

func (sh *shard) wakeup() {
	select {
	case sh.wake <- struct{}{}:
	default: // a token is already there
	}
}

// run sends bursts until stop is closed.
func (sh *shard) run(stop <-chan struct{}) {
	defer sh.idle()
	for {
		select {
		case <-sh.wake:
		case now := <-sh.ticker.C:
			sh.pace(now)
		case <-sh.reportTimer.C:
		case <-stop:
			return
		}
		sh.collect()
		sh.dueReports()
		sh.send()
	}
}

// idle leaves the shard as a new writer expects it: no replay going on,
// the viewers to report to handed on.
func (sh *shard) idle() {
	sh.stopReports()
	sh.ticker.Stop()
	for _, d := range sh.replays {
		d.rp = nil
	}
	clear(sh.replays)
	sh.replays = sh.replays[:0]
}

// collect takes what is queued and sorts it by viewer.
func (sh *shard) collect() {
	for {
		select {
		case it := <-sh.queue:
			sh.route(it)
		default:
			return
		}
	}
}

func (sh *shard) route(it item) {
	switch {
	case it.to != nil:
		for _, d := range it.to.downs {
			sh.add(d, it.p)
		}
	case it.rp != nil:
		sh.startReplay(it.d, it.rp)
	default:
		sh.queueFor(it.d, it.p) // a retransmission: at once, even during a replay
	}
}

// add queues a live packet for a viewer's track, behind its replay if one
// is going on.
func (sh *shard) add(d *downTrack, p *packet) {
	if d.rp != nil {
		d.rp.hold(d, p)
		return
	}
	sh.queueFor(d, p)
}

// queueFor puts a packet in the viewer's part of the burst.
func (sh *shard) queueFor(d *downTrack, p *packet) {
	s := d.sub
	if s.gone.Load() {
		return
	}
	if len(s.pending) == 0 {
		sh.active = append(sh.active, s)
	}
	s.pending = append(s.pending, outPacket{d: d, p: p})
}

// send writes the burst to each of its viewers in turn, starting with a
// different one each time so that none is always last: on the shard's
// sockets, as one batch, sent when full and at the end.
func (sh *shard) send() {
	n := len(sh.active)
	if n == 0 {
		return
	}
	first := sh.start % n
	nt := sh.sockNet.Load()
	if nt != nil {
		nt.Begin()
	}
	for i := range n {
		sh.active[(first+i)%n].sendPending()
	}
	if nt != nil {
		nt.Flush()
	}
	sh.start++
	clear(sh.active)
	sh.active = sh.active[:0]
}

// sendPending writes a viewer's part of a burst as one batch of sends,
// flushed at the end of each video frame: a frame's packets, which go to the
// same address and are mostly of the same size, then leave in one system
// call (see udpbatch). A sender report due goes in the last batch.
func (s *subscriber) sendPending() {
	s.begin()
	for i, o := range s.pending {
		o.d.write(o.p)
		if o.p.header.Marker && o.d.up.isVideo && i < len(s.pending)-1 {
			s.flush()
			s.begin()
		}
	}
	if s.srDue {
		s.srDue = false
		s.sendReports()
	}
	s.flush()
	clear(s.pending)
	s.pending = s.pending[:0]
}

// withoutDown returns fans without d, and without a fan left empty.
func withoutDown(fans []*fan, d *downTrack) []*fan {
	out := make([]*fan, 0, len(fans))
	for _, f := range fans {
		if !slices.Contains(f.downs, d) {
			out = append(out, f)
			continue
		}
		downs := make([]*downTrack, 0, len(f.downs))
		for _, x := range f.downs {
			if x != d {
				downs = append(downs, x)
			}
		}
		if len(downs) > 0 {
			out = append(out, &fan{sh: f.sh, downs: downs})
		}
	}
	return out
}

// withDown returns fans with d added to its shard's.
func withDown(fans []*fan, d *downTrack, sh *shard) []*fan {
	out := make([]*fan, 0, len(fans)+1)
	added := false
	for _, f := range fans {
		if f.sh == sh {
			f = &fan{sh: sh, downs: append(slices.Clip(f.downs), d)}
			added = true
		}
		out = append(out, f)
	}
	if !added {
		out = append(out, &fan{sh: sh, downs: []*downTrack{d}})
	}
	return out
}
