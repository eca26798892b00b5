package loadtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/sysstat"
)

// leaveConcurrency bounds the viewers leaving at once at the end.
const leaveConcurrency = 32

// runner is one run: the publisher, the viewers and what they share.
type runner struct {
	o   *Options
	c   *client     // the publisher's node
	vcs []*client   // the viewers' nodes (Options.ViewerURLs), round robin
	api *webrtc.API // the viewers'
	// With -shared-sockets, the viewers' sockets (udpshare.go), closed
	// after they left.
	socks []*sharedSocket
	out   *jsonLines
	log   io.Writer

	pub *publisher

	viewers []*viewer    // allocated up front; started counts those in use
	started atomic.Int64 // viewers whose join has begun
	joining sync.WaitGroup

	measuring                  atomic.Bool
	hlsHoldBackMs              atomic.Int64 // PART-HOLD-BACK of the HLS playlists (hls.go)
	videoLatency, audioLatency *histogram
	nodeVideo                  []*histogram // video latency by viewer node (vcs)
	phase                      atomic.Pointer[string]
	began                      time.Time
}

// run performs one load test and returns its summary. A cancelled ctx
// (Ctrl-C) cuts the phase in progress short; the run still reports and
// tears down.
func run(ctx context.Context, o *Options, log io.Writer, out *jsonLines) (*Summary, error) {
	c, err := newClient(o.URL, o.BasePath, o.Insecure)
	if err != nil {
		return nil, err
	}
	c.tokens = newTokens(o)
	defer c.close()
	vcs := []*client{}
	for _, u := range o.ViewerURLs {
		vc, err := newClient(u, o.BasePath, o.Insecure)
		if err != nil {
			return nil, fmt.Errorf("-viewer-url: %w", err)
		}
		vc.tokens = c.tokens
		defer vc.close()
		vcs = append(vcs, vc)
	}
	api, err := viewerAPI(o.LoopbackOnly, o.Simulcast, 0, nil)
	if err != nil {
		return nil, err
	}
	var socks []*sharedSocket
	if o.Protocol != "hls" {
		socks, err = openSharedSockets(o.SharedSockets, o.Viewers, o.LoopbackOnly, o.Simulcast, o.UDPGRO)
	}
	if err != nil {
		return nil, err
	}
	defer closeSharedSockets(socks)
	nodeVideo := make([]*histogram, len(vcs))
	for i := range nodeVideo {
		nodeVideo[i] = &histogram{}
	}
	r := &runner{o: o, c: c, vcs: vcs, nodeVideo: nodeVideo, api: api, socks: socks, out: out, log: log, viewers: make([]*viewer, o.Viewers),
		videoLatency: &histogram{}, audioLatency: &histogram{}, began: time.Now()}
	r.setPhase("publishing")
	pctx, cancel := context.WithTimeout(ctx, o.JoinTimeout)
	r.pub, err = startPublisher(pctx, o, c)
	cancel()
	if err != nil {
		return nil, err
	}
	toolBefore, _ := sysstat.ReadProcess("self") // the tool with its publisher and no viewer
	floor := r.measureFloor()

	stopProgress := r.startProgress()
	r.setPhase("joining")
	r.joinAll(ctx)

	r.setPhase("measuring")
	var server, tool *procWatch
	if o.PID > 0 {
		server = newProcWatch(strconv.Itoa(o.PID))
	}
	tool = newProcWatch("self")
	machine := newMachineWatch()
	rx0, bytes0 := r.received()
	drops0, dropsOK := udpDrops()
	pub0 := r.pub.packets.Load()
	stopProfile := startCPUProfile(o.CPUProfile, log)
	windowStart := time.Now()
	r.measuring.Store(true)
	mid := r.markMidWindow()
	r.measure(ctx, server, tool)
	mid.Stop()
	r.measuring.Store(false)
	window := time.Since(windowStart)
	machineBusy, machineOK := machine.busyPercent()
	stopProfile()
	writeHeapProfile(o.MemProfile, log)
	rx1, bytes1 := r.received()
	drops1, dropsOK1 := udpDrops()
	pub1 := r.pub.packets.Load()
	stopProgress()

	s := r.summarize(window)
	s.HLSHoldBackMs = float64(r.hlsHoldBackMs.Load())
	if secs := window.Seconds(); secs > 0 {
		s.PacketsPerSecond = float64(rx1-rx0) / secs
		s.MbitPerSecond = float64(bytes1-bytes0) * 8 / secs / 1e6
		s.PublisherPacketsPerSecond = float64(pub1-pub0) / secs
	}
	s.addCosts(o.PID, server, tool, toolBefore)
	s.addFloor(floor)
	if machineOK {
		s.MachineBusy = &machineBusy
	}
	if dropsOK && dropsOK1 && drops1 >= drops0 {
		d := drops1 - drops0
		s.ToolSocketDrops = &d
	}
	for _, v := range r.viewers[:r.started.Load()] {
		out.write(v.result())
	}

	r.setPhase("leaving")
	s.LeaveErrors = r.leaveAll()
	if err := r.pub.close(context.Background()); err != nil {
		s.EndError = err.Error()
	}
	return s, nil
}

// addCosts adds what the window cost the server (pid, if watched) and the
// tool, in all and per viewer connected; toolBefore is the tool before any
// viewer joined.
func (s *Summary) addCosts(pid int, server, tool *procWatch, toolBefore sysstat.Process) {
	if server != nil {
		u, err := server.usage()
		if u.Seconds > 0 {
			s.Server = &u
			if s.ViewersConnected > 0 {
				s.ServerCPUPerViewer = u.CPUCorePercent / float64(s.ViewersConnected)
			}
		}
		if err != nil {
			s.ServerError = fmt.Sprintf("pid %d: %v", pid, err)
		}
	}
	s.Tool, _ = tool.usage()
	if s.ViewersConnected > 0 {
		n := float64(s.ViewersConnected)
		s.ToolCPUPerViewer = s.Tool.CPUCorePercent / n
		if toolBefore.RSSBytes > 0 {
			s.ToolRSSPerViewerKB = (s.Tool.RSSEndMB*(1<<20) - float64(toolBefore.RSSBytes)) / 1024 / n
		}
	}
}

// measureFloor measures the machine's floor with -floor and -pid, while
// only the publisher runs: the server's CPU per packet is compared with it.
func (r *runner) measureFloor() float64 {
	if !r.o.Floor || r.o.PID <= 0 {
		return 0
	}
	r.setPhase("floor")
	f, err := MeasureFloor(5, 100000)
	if err != nil {
		fmt.Fprintf(r.log, "loadtest: floor not measured: %v\n", err)
		return 0
	}
	return f.Microseconds
}

// addFloor adds the server's CPU per packet received, and its ratio to the
// floor (µs, 0 when not measured).
func (s *Summary) addFloor(floorUs float64) {
	if s.Server == nil || s.PacketsPerSecond <= 0 {
		return
	}
	s.ServerCPUPerPacket = s.Server.CPUCorePercent / 100 / s.PacketsPerSecond * 1e6
	if floorUs > 0 {
		s.FloorUs = floorUs
		s.FloorRatio = s.ServerCPUPerPacket / floorUs
	}
}

func (r *runner) setPhase(p string) { r.phase.Store(&p) }

// sampled tells whether viewer index reads every packet: all of them but
// with -sample-viewers N, N of them spread evenly.
func (r *runner) sampled(index int) bool {
	n := r.o.SampleViewers
	return n == 0 || n >= r.o.Viewers || (index*n)%r.o.Viewers < n
}

// joinAll starts the viewers at the configured rate and waits until each
// has connected or failed.
func (r *runner) joinAll(ctx context.Context) {
	var interval time.Duration
	if r.o.Rate > 0 {
		interval = time.Duration(float64(time.Second) / r.o.Rate)
	}
	next := time.Now()
	for i := range r.viewers {
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			break
		}
		next = next.Add(interval)
		v := newViewer(r, i)
		r.viewers[i] = v
		r.started.Add(1)
		r.joining.Add(1)
		go func() {
			defer r.joining.Done()
			jctx, cancel := context.WithTimeout(ctx, r.o.JoinTimeout)
			defer cancel()
			v.join(jctx)
		}()
	}
	r.joining.Wait()
}

// measure samples the processes every second for the measurement window.
func (r *runner) measure(ctx context.Context, server, tool *procWatch) {
	end := time.NewTimer(r.o.Duration)
	defer end.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if server != nil {
				server.sample()
			}
			tool.sample()
		case <-end.C:
			if server != nil {
				server.sample()
			}
			tool.sample()
			return
		case <-ctx.Done():
			return
		}
	}
}

// received sums the packets and bytes every viewer has received.
func (r *runner) received() (packets, bytes uint64) {
	for _, v := range r.viewers[:r.started.Load()] {
		packets += v.video.received.Load() + v.audio.received.Load()
		bytes += v.video.bytes.Load() + v.audio.bytes.Load()
	}
	return packets, bytes
}

// leaveAll makes every viewer leave, a bounded number at a time, and
// returns how many leaves the server refused.
func (r *runner) leaveAll() int {
	var (
		wg      sync.WaitGroup
		refused atomic.Int64
	)
	sem := make(chan struct{}, leaveConcurrency)
	for _, v := range r.viewers[:r.started.Load()] {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// A viewer that never got in may have nothing to leave.
			if err := v.leave(ctx); err != nil && v.state.Load() != stateFailed {
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(refused.Load())
}

// Progress is the line printed (and written as JSON) every -progress.
type Progress struct {
	Type          string  `json:"type"` // "progress"
	Seconds       float64 `json:"t"`
	Phase         string  `json:"phase"`
	Started       int     `json:"started"`
	Connected     int     `json:"connected"`
	Failed        int     `json:"failed"`
	Lost          int     `json:"lost"`
	RxPPS         float64 `json:"rxPps"`
	RxMbps        float64 `json:"rxMbps"`
	PublisherPLIs uint64  `json:"publisherPlis"`
	ToolCPU       float64 `json:"toolCpuCorePercent"`
	ServerCPU     float64 `json:"serverCpuCorePercent,omitempty"`
}

// startProgress prints a progress line every interval until the returned
// function is called.
func (r *runner) startProgress() (stop func()) {
	if r.o.Progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(r.o.Progress)
		defer tick.Stop()
		lastPkts, lastBytes := r.received()
		lastSelf, _ := sysstat.ReadProcess("self")
		var lastServer sysstat.Process
		if r.o.PID > 0 {
			lastServer, _ = sysstat.ReadProcess(strconv.Itoa(r.o.PID))
		}
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			now := time.Now()
			secs := now.Sub(last).Seconds()
			pkts, bytes := r.received()
			p := Progress{Type: "progress", Seconds: now.Sub(r.began).Seconds(), Phase: *r.phase.Load(),
				Started: int(r.started.Load()), RxPPS: float64(pkts-lastPkts) / secs,
				RxMbps: float64(bytes-lastBytes) * 8 / secs / 1e6, PublisherPLIs: r.pub.plis.Load()}
			for _, v := range r.viewers[:p.Started] {
				switch v.state.Load() {
				case stateConnected:
					p.Connected++
				case stateFailed:
					p.Failed++
				case stateLost:
					p.Lost++
				}
			}
			if self, err := sysstat.ReadProcess("self"); err == nil {
				p.ToolCPU = sysstat.CPUPercent(lastSelf, self)
				lastSelf = self
			}
			if r.o.PID > 0 {
				if srv, err := sysstat.ReadProcess(strconv.Itoa(r.o.PID)); err == nil {
					p.ServerCPU = sysstat.CPUPercent(lastServer, srv)
					lastServer = srv
				}
			}
			lastPkts, lastBytes, last = pkts, bytes, now
			r.out.write(p)
			r.printProgress(p)
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func (r *runner) printProgress(p Progress) {
	line := fmt.Sprintf("[%5.1fs] %-9s viewers %d/%d connected %d failed %d lost %d  rx %.0f pps %.1f Mbit/s  PLIs %d  tool CPU %.0f%%",
		p.Seconds, p.Phase, p.Started, r.o.Viewers, p.Connected, p.Failed, p.Lost, p.RxPPS, p.RxMbps,
		p.PublisherPLIs, p.ToolCPU)
	if r.o.PID > 0 {
		line += fmt.Sprintf("  server CPU %.0f%%", p.ServerCPU)
	}
	fmt.Fprintln(r.log, line)
}

// startCPUProfile profiles the tool itself (what it costs per viewer) if
// path is set.
func startCPUProfile(path string, log io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(log, "onair loadtest: CPU profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(log, "onair loadtest: CPU profile:", err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

func writeHeapProfile(path string, log io.Writer) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.WriteHeapProfile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(log, "onair loadtest: heap profile:", err)
	}
}
