package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Summary is the result of one run. Durations are in milliseconds, losses in
// percent of the packets sent.
type Summary struct {
	Type    string    `json:"type"` // "summary"
	Started time.Time `json:"started"`
	URL     string    `json:"url"`
	// ViewerURLs are the nodes the viewers joined, when not URL alone.
	ViewerURLs []string `json:"viewerUrls,omitempty"`
	Room       string   `json:"room"`
	Protocol   string   `json:"protocol"`
	Publish    string   `json:"publish"`
	Codec      string   `json:"codec"`
	Bitrate    int      `json:"bitrate"`
	FPS        float64  `json:"fps"`
	KeyInt     float64  `json:"keyintSeconds"`
	HonorPLI   bool     `json:"honorPli"`
	Audio      bool     `json:"audio"`
	Rate       float64  `json:"rate"`
	Window     float64  `json:"windowSeconds"`

	ViewersRequested int            `json:"viewersRequested"`
	ViewersConnected int            `json:"viewersConnected"` // connected, and still were at the end
	ViewersFailed    int            `json:"viewersFailed"`    // never connected
	ViewersLost      int            `json:"viewersLost"`      // connected, then lost
	Failures         map[string]int `json:"failures,omitempty"`

	LossVideo Dist `json:"lossVideoPercent"`
	LossAudio Dist `json:"lossAudioPercent"`

	JoinAnswer          Dist `json:"joinAnswerMs"`
	JoinConnected       Dist `json:"joinConnectedMs"`
	FirstPacket         Dist `json:"firstPacketMs"`
	FirstKeyframe       Dist `json:"firstKeyframeMs"`
	ViewersWithKeyframe int  `json:"viewersWithKeyframe"`
	LatencyVideo        Dist `json:"forwardingVideoMs"`
	LatencyAudio        Dist `json:"forwardingAudioMs"`
	// LatencyVideoByNode is LatencyVideo of the viewers of each of
	// ViewerURLs, when they are set.
	LatencyVideoByNode []Dist `json:"forwardingVideoMsByNode,omitempty"`

	PacketsPerSecond          float64 `json:"rxPacketsPerSecond"`
	MbitPerSecond             float64 `json:"rxMbitPerSecond"`
	PublisherPacketsPerSecond float64 `json:"publisherPacketsPerSecond"`
	PublisherLost             bool    `json:"publisherLost"` // its media connection failed during the run
	PublisherKeyframes        uint64  `json:"publisherKeyframes"`
	PublisherPLIs             uint64  `json:"publisherPlis"`
	PublisherFIRs             uint64  `json:"publisherFirs"`
	ViewerPLIs                uint64  `json:"viewerPlis"`

	Server             *ProcUsage `json:"server,omitempty"`
	ServerError        string     `json:"serverError,omitempty"`
	Tool               ProcUsage  `json:"tool"`
	ServerCPUPerViewer float64    `json:"serverCpuCorePercentPerViewer,omitempty"`
	// ServerCPUPerPacket is the server's CPU time over the window per packet
	// the viewers received, in µs; FloorUs the machine's floor measured
	// before the viewers joined (-floor), and FloorRatio the first over the
	// second: 1.0 is a server that costs what a bare encrypt-and-send costs.
	ServerCPUPerPacket float64 `json:"serverCpuPerPacketUs,omitempty"`
	FloorUs            float64 `json:"floorUs,omitempty"`
	FloorRatio         float64 `json:"floorRatio,omitempty"`
	ToolCPUPerViewer   float64 `json:"toolCpuCorePercentPerViewer"`
	// HLSHoldBackMs is the playlists' PART-HOLD-BACK: how far behind the
	// newest part a player starts (-protocol hls).
	HLSHoldBackMs      float64 `json:"hlsPartHoldBackMs,omitempty"`
	ToolRSSPerViewerKB float64 `json:"toolRssPerViewerKB"`
	// MachineBusy is the share of all cores busy over the window, whoever
	// used them: well above server + tool, something else was running.
	MachineBusy *float64 `json:"machineBusyPercent,omitempty"`
	// ToolSocketDrops is how many packets overflowed the receive buffers of
	// the tool's UDP sockets over the window: loss the tool itself caused
	// (a busy machine starving it), not the server.
	ToolSocketDrops *uint64 `json:"toolSocketDrops,omitempty"`

	// SharedSockets is -shared-sockets; ViewersHeaderOnly, of the viewers
	// counted, those that counted packet headers only after their first
	// keyframe (-sample-viewers): forwarding latency is the others'.
	SharedSockets     int `json:"sharedSockets,omitempty"`
	ViewersHeaderOnly int `json:"viewersHeaderOnly,omitempty"`
	// UDPGRO: the shared sockets received with UDP_GRO (-udp-gro);
	// UDPGROCoalesced, how many of their reads returned several datagrams.
	UDPGRO          bool   `json:"udpGro"`
	UDPGROCoalesced uint64 `json:"udpGroCoalesced,omitempty"`

	LeaveErrors int    `json:"leaveErrors"`
	EndError    string `json:"endError,omitempty"`

	Simulcast *SimulcastSummary `json:"simulcast,omitempty"` // with -simulcast (simulcast.go)
}

// maxFailureKinds bounds the distinct failure messages kept in a summary.
const maxFailureKinds = 8

// summarize computes the summary of the viewers at the end of the window.
func (r *runner) summarize(window time.Duration) *Summary {
	o := r.o
	s := &Summary{Type: "summary", Started: r.began, URL: o.URL, Room: o.Room, Protocol: o.Protocol,
		Publish: o.Publish, Codec: o.Codec, Bitrate: o.Bitrate, FPS: o.FPS, KeyInt: o.KeyInt.Seconds(),
		HonorPLI: o.HonorPLI, Audio: o.Audio, Rate: o.Rate, Window: window.Seconds(),
		ViewersRequested: o.Viewers, SharedSockets: o.SharedSockets, UDPGRO: len(r.socks) > 0}
	for _, sock := range r.socks {
		s.UDPGRO = s.UDPGRO && sock.gro
		s.UDPGROCoalesced += sock.coalesced.Load()
	}
	if len(o.ViewerURLs) > 1 || (len(o.ViewerURLs) == 1 && o.ViewerURLs[0] != o.URL) {
		s.ViewerURLs = o.ViewerURLs
		for _, h := range r.nodeVideo {
			s.LatencyVideoByNode = append(s.LatencyVideoByNode, h.dist())
		}
	}
	var lossV, lossA, answer, conn, first, key []float64
	for _, v := range r.viewers[:r.started.Load()] {
		res := v.result()
		switch v.state.Load() {
		case stateConnected:
			s.ViewersConnected++
		case stateLost:
			s.ViewersLost++
		default:
			s.ViewersFailed++
		}
		if res.Error != "" {
			if s.Failures == nil {
				s.Failures = map[string]int{}
			}
			if _, ok := s.Failures[res.Error]; ok || len(s.Failures) < maxFailureKinds {
				s.Failures[res.Error]++
			}
		}
		s.ViewerPLIs += res.PLIsSent
		if res.HeaderOnly {
			s.ViewersHeaderOnly++
		}
		if st := v.state.Load(); st != stateConnected && st != stateLost {
			continue // it may have connected after its join timed out: not counted
		}
		lossV = append(lossV, res.VideoLossPct)
		if o.Audio {
			lossA = append(lossA, res.AudioLossPct)
		}
		for _, m := range []struct {
			v   *float64
			out *[]float64
		}{{res.AnswerMs, &answer}, {res.ConnectedMs, &conn}, {res.FirstPacketMs, &first}, {res.FirstKeyframeMs, &key}} {
			if m.v != nil {
				*m.out = append(*m.out, *m.v)
			}
		}
	}
	s.ViewersFailed += o.Viewers - int(r.started.Load()) // never started (interrupted)
	s.LossVideo, s.LossAudio = summarize(lossV), summarize(lossA)
	s.JoinAnswer, s.JoinConnected = summarize(answer), summarize(conn)
	s.FirstPacket, s.FirstKeyframe = summarize(first), summarize(key)
	s.ViewersWithKeyframe = len(key)
	s.LatencyVideo, s.LatencyAudio = r.videoLatency.dist(), r.audioLatency.dist()
	select {
	case <-r.pub.lost:
		s.PublisherLost = true
	default:
	}
	s.PublisherKeyframes = r.pub.keyframes.Load()
	s.PublisherPLIs, s.PublisherFIRs = r.pub.plis.Load(), r.pub.firs.Load()
	r.summarizeLayers(s)
	return s
}

// writeTable prints the summary for people.
func writeTable(w io.Writer, s *Summary) {
	kind := strings.ToUpper(s.Codec)
	audio := "no audio"
	if s.Audio {
		audio = "Opus"
	}
	pli := "ignores PLI"
	if s.HonorPLI {
		pli = "honours PLI"
	}
	fmt.Fprintf(w, "onair loadtest  %s  room %s\n", s.URL, s.Room)
	fmt.Fprintf(w, "publisher  %-4s  %s %d kbit/s %g fps, keyframe every %gs, %s, %s\n",
		s.Publish, kind, s.Bitrate/1000, s.FPS, s.KeyInt, pli, audio)
	fmt.Fprintf(w, "viewers    %-4s  %d requested at %g/s; measured for %.1fs after all joined\n",
		s.Protocol, s.ViewersRequested, s.Rate, s.Window)
	if len(s.ViewerURLs) > 0 {
		fmt.Fprintf(w, "           on %s\n", strings.Join(s.ViewerURLs, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "viewers: %d connected, %d failed, %d lost (connected, then dropped)\n",
		s.ViewersConnected, s.ViewersFailed, s.ViewersLost)
	keys := make([]string, 0, len(s.Failures))
	for k := range s.Failures {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return s.Failures[b] - s.Failures[a] })
	for _, k := range keys {
		fmt.Fprintf(w, "  %4d × %s\n", s.Failures[k], k)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ms\tn\tp50\tp95\tp99\tmax\t")
	row := func(name string, d Dist) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", name, d.N, d.P50, d.P95, d.P99, d.Max)
	}
	row("join → answer", s.JoinAnswer)
	row("join → connected", s.JoinConnected)
	row("join → first packet", s.FirstPacket)
	row("join → first keyframe", s.FirstKeyframe)
	row("forwarding, video frames", s.LatencyVideo)
	for i, d := range s.LatencyVideoByNode {
		row("  of viewers on "+s.ViewerURLs[i], d)
	}
	if s.Audio {
		row("forwarding, audio frames", s.LatencyAudio)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "loss % (per viewer)\tmean\tp95\tmax\t")
	fmt.Fprintf(tw, "video\t%.3f\t%.3f\t%.3f\t\n", s.LossVideo.Mean, s.LossVideo.P95, s.LossVideo.Max)
	if s.Audio {
		fmt.Fprintf(tw, "audio\t%.3f\t%.3f\t%.3f\t\n", s.LossAudio.Mean, s.LossAudio.P95, s.LossAudio.Max)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)

	writeLayers(w, s)
	if s.PublisherLost {
		fmt.Fprintln(w, "the publisher's media connection failed during the run")
	}
	fmt.Fprintf(w, "out of the server (as received): %.0f packets/s, %.1f Mbit/s; publisher sent %.0f packets/s\n",
		s.PacketsPerSecond, s.MbitPerSecond, s.PublisherPacketsPerSecond)
	fmt.Fprintf(w, "keyframes: publisher sent %d, received %d PLIs and %d FIRs; viewers sent %d PLIs; %d of %d viewers saw one\n",
		s.PublisherKeyframes, s.PublisherPLIs, s.PublisherFIRs, s.ViewerPLIs, s.ViewersWithKeyframe,
		s.ViewersConnected+s.ViewersLost)
	if s.Server != nil {
		fmt.Fprintf(w, "server (pid %s): %s\n", s.Server.PID, usageText(*s.Server))
		fmt.Fprintf(w, "server per viewer: %.3f%% of a core\n", s.ServerCPUPerViewer)
		if s.ServerCPUPerPacket > 0 {
			fmt.Fprintf(w, "server per packet: %.2f µs", s.ServerCPUPerPacket)
			if s.FloorUs > 0 {
				fmt.Fprintf(w, "; floor %.2f µs (AES-GCM seal + sendto), ratio %.2f", s.FloorUs, s.FloorRatio)
			}
			fmt.Fprintln(w)
		}
	}
	if s.HLSHoldBackMs > 0 {
		fmt.Fprintf(w, "hls: \"forwarding\" is a frame's age when its part arrives; a player shows it PART-HOLD-BACK (%.0f ms) later:\n"+
			"     glass to player p50 %.0f ms, p95 %.0f ms\n", s.HLSHoldBackMs, s.LatencyVideo.P50+s.HLSHoldBackMs, s.LatencyVideo.P95+s.HLSHoldBackMs)
	}
	if s.ServerError != "" {
		fmt.Fprintf(w, "server: %s\n", s.ServerError)
	}
	fmt.Fprintf(w, "load tool:      %s\n", usageText(s.Tool))
	fmt.Fprintf(w, "load tool per viewer: %.2f%% of a core, %.0f KB RSS\n", s.ToolCPUPerViewer, s.ToolRSSPerViewerKB)
	if s.ToolSocketDrops != nil && *s.ToolSocketDrops > 0 {
		fmt.Fprintf(w, "load tool's sockets dropped %d packets (receive buffers full): that loss is the tool's\n", *s.ToolSocketDrops)
	}
	if s.MachineBusy != nil {
		fmt.Fprintf(w, "machine: %.1f%% of all %d cores busy over the window (every process)\n", *s.MachineBusy, s.Tool.Cores)
	}
	if s.LeaveErrors > 0 || s.EndError != "" {
		fmt.Fprintf(w, "teardown: %d leaves refused; end of broadcast: %s\n", s.LeaveErrors, orNone(s.EndError))
	}
}

func usageText(u ProcUsage) string {
	return fmt.Sprintf("CPU %.1f%% of a core (%.1f%% of %d cores), RSS %.1f MB at start, %.1f MB at end, %.1f MB max",
		u.CPUCorePercent, u.CPUMachinePercent, u.Cores, u.RSSStartMB, u.RSSEndMB, u.RSSMaxMB)
}

func orNone(s string) string {
	if s == "" {
		return "ok"
	}
	return s
}

// jsonLines writes one JSON object per line; a nil one writes nothing.
type jsonLines struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func (j *jsonLines) write(v any) {
	if j == nil || j.w == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		_, j.err = j.w.Write(append(b, '\n'))
	}
}
