// Package loadtest is `onair loadtest`: it loads an onair server with one
// publisher of synthetic media (H.264 or VP8, and Opus) and N receive-only
// viewers that join at a set rate over the REST + WebSocket protocol or
// WHEP (or read its Low-Latency HLS: hls.go), and reports what the viewers got (connections, loss, time to first
// packet and keyframe, forwarding latency) and what it cost the server and
// the tool itself (CPU, RSS), as a table and as JSON lines.
//
// It owns the pion peers, HTTP and WebSocket clients it creates, and talks to
// the server only through its public HTTP, WebSocket and media interfaces
// (and /proc for a local server's CPU and memory); it imports nothing of the
// server but internal/codec's keyframe detection.
package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onair-live/onair/internal/randid"
)

// Options are the flags of one run.
type Options struct {
	URL          string
	ViewerURLs   []string // the nodes viewers join, round robin (default: URL)
	BasePath     string
	Protocol     string // viewers: ws, whep or hls
	Publish      string // publisher: ws or whip
	Viewers      int
	Rate         float64 // viewers started per second; 0: all at once
	Codec        string  // h264 or vp8
	Bitrate      int     // video, bit/s
	FPS          float64
	KeyInt       time.Duration
	HonorPLI     bool
	Audio        bool
	Duration     time.Duration // measurement window, after every viewer joined or failed
	PID          int
	JSONPath     string
	Room         string
	LoopbackOnly bool
	Insecure     bool // accept any TLS certificate
	JoinTimeout  time.Duration
	ViewerPLI    time.Duration // a viewer with no keyframe this long after connecting sends one PLI; 0: never
	Progress     time.Duration
	CPUProfile   string // the tool's own CPU profile over the measurement window
	MemProfile   string // the tool's own heap profile at the end of the window
	// Against a server that wants tokens (tokens.go): Secret mints one per
	// user; Token is the publisher's.
	Secret, Token string
	// Simulcast publishes three layers (simulcast.go): the bitrate, a
	// quarter and a sixteenth of it.
	Simulcast bool
	// CapViewers viewers (the first ones) drop what they receive over
	// CapBitrate bit/s, as behind a bottleneck.
	CapViewers int
	CapBitrate int
	// SharedSockets > 0: the viewers (but capped ones) share this many UDP
	// sockets (udpshare.go). SampleViewers > 0, with them: only this many
	// viewers decrypt every packet; the others count headers after their
	// first keyframe.
	SharedSockets int
	SampleViewers int
	// UDPGRO asks for UDP_GRO on the shared sockets (udpshare.go).
	UDPGRO bool
	// Floor measures the machine's floor (floor.go) before the viewers
	// join, and reports the server's CPU per outgoing packet as a ratio of it.
	Floor bool
}

// Main runs `onair loadtest` with args (after the subcommand) and returns
// the process exit code: 0 when the run completed (whatever it measured),
// 1 when it could not run, 2 on bad flags.
func Main(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "onair loadtest:", err)
		return 2
	}
	var out jsonLines
	if o.JSONPath != "" {
		if o.JSONPath == "-" {
			out.w = stdout
		} else {
			f, err := os.Create(o.JSONPath)
			if err != nil {
				fmt.Fprintln(stderr, "onair loadtest:", err)
				return 1
			}
			defer f.Close()
			out.w = f
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := run(ctx, o, stderr, &out)
	if err != nil {
		fmt.Fprintln(stderr, "onair loadtest:", err)
		return 1
	}
	out.write(s)
	if o.JSONPath != "-" {
		writeTable(stdout, s)
	}
	if out.err != nil {
		fmt.Fprintln(stderr, "onair loadtest: writing JSON:", out.err)
		return 1
	}
	return 0
}

func parseFlags(args []string, usage io.Writer) (*Options, error) {
	o := &Options{}
	fs := flag.NewFlagSet("onair loadtest", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() {
		fmt.Fprintln(usage, "usage: onair loadtest [flags]\n\n"+
			"Publishes synthetic media to a room of an onair server, joins viewers to it and\n"+
			"reports what they received and what it cost. Flags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "server root URL (http or https)")
	viewerURLs := fs.String("viewer-url", "", "node URLs the ws and whep viewers join, comma-separated, spread round robin: a cluster's edges (default: -url)")
	fs.StringVar(&o.BasePath, "base-path", "/signal", "base path of the REST API and WebSocket")
	fs.StringVar(&o.Protocol, "protocol", "ws", "how viewers join: ws (POST /room/view + WebSocket), whep, or hls (Low-Latency HLS readers)")
	fs.StringVar(&o.Publish, "publish", "ws", "how the publisher publishes: ws (POST /room/live + WebSocket) or whip")
	fs.IntVar(&o.Viewers, "viewers", 25, "number of viewers")
	fs.Float64Var(&o.Rate, "rate", 10, "viewers started per second (0: all at once)")
	fs.StringVar(&o.Codec, "codec", "h264", "video codec: h264 or vp8")
	br := bitrate(2_000_000)
	fs.Var(&br, "bitrate", "video bitrate, e.g. 2000k, 2M or 2000000")
	fs.Float64Var(&o.FPS, "fps", 30, "video frames per second")
	fs.DurationVar(&o.KeyInt, "keyint", 2*time.Second, "time between keyframes")
	fs.BoolVar(&o.HonorPLI, "honor-pli", true, "send a keyframe on each PLI or FIR received")
	fs.BoolVar(&o.Audio, "audio", true, "also publish Opus audio (20 ms packets, 32 kbit/s)")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "measurement window, after every viewer joined or failed")
	fs.IntVar(&o.PID, "pid", 0, "process id of a local server: report its CPU and RSS over the window")
	fs.StringVar(&o.JSONPath, "json", "", "write JSON lines (progress, one per viewer, summary) to this file ('-': stdout, no table)")
	fs.StringVar(&o.Room, "room", "", "room name (default: loadtest-<random>)")
	fs.BoolVar(&o.LoopbackOnly, "loopback-only", true, "gather ICE candidates on 127.0.0.1 only")
	fs.BoolVar(&o.Insecure, "insecure", false, "accept any TLS certificate (a server run with -tls-self-signed)")
	fs.DurationVar(&o.JoinTimeout, "join-timeout", 20*time.Second, "how long a viewer (or the publisher) may take to connect")
	fs.DurationVar(&o.ViewerPLI, "viewer-pli", time.Second, "a viewer with no keyframe this long after connecting sends one PLI (0: never)")
	fs.DurationVar(&o.Progress, "progress", time.Second, "interval of the progress lines on stderr (0: none)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write the tool's own CPU profile over the measurement window to this file")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write the tool's own heap profile at the end of the window to this file")
	fs.StringVar(&o.Secret, "secret", "", "the server's -auth-secret: mint a token for each simulated user (publish and view, on the room only)")
	fs.StringVar(&o.Token, "token", "", "the publisher's token (its subject names the publisher; viewers need -secret)")
	fs.BoolVar(&o.Simulcast, "simulcast", false, "publish three simulcast layers (l, m, h: bitrate/16, bitrate/4, bitrate) and report each viewer's layer")
	fs.IntVar(&o.CapViewers, "cap-viewers", 0, "this many viewers (the first) drop what they receive over -cap, as behind a bottleneck")
	capRate := bitrate(800_000)
	fs.Var(&capRate, "cap", "the capped viewers' downlink, e.g. 800k")
	fs.IntVar(&o.SharedSockets, "shared-sockets", 0, "the ws and whep viewers share this many UDP sockets, read in batches (0: one socket per viewer); fewer than -viewers needs a server with a port per peer (-ice-socket-per-viewer, not -ice-udp-mux-port)")
	fs.BoolVar(&o.UDPGRO, "udp-gro", true, "with -shared-sockets: receive with UDP GRO (Linux 5.0+; off where the kernel refuses it), taking a UDP GSO message whole and splitting it in the tool, as a real NIC's receiver would, so the server is not charged for the tool's per-datagram delivery over loopback")
	fs.IntVar(&o.SampleViewers, "sample-viewers", 0, "with -shared-sockets: only this many viewers (spread evenly) decrypt every packet and measure forwarding latency; the others count packets from their RTP headers after their first keyframe (0: all decrypt)")
	fs.BoolVar(&o.Floor, "floor", true, "before the viewers join, measure the machine's floor (one AES-GCM seal and one sendto per packet) and report the server's CPU per packet against it (needs -pid)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.Bitrate, o.CapBitrate = int(br), int(capRate)
	for _, u := range strings.Split(*viewerURLs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.ViewerURLs = append(o.ViewerURLs, u)
		}
	}
	if len(o.ViewerURLs) == 0 {
		o.ViewerURLs = []string{o.URL}
	}
	if o.Room == "" {
		o.Room = "loadtest-" + randid.Hex(4)
	}
	return o, o.check()
}

func (o *Options) check() error {
	switch {
	case o.Protocol != "ws" && o.Protocol != "whep" && o.Protocol != "hls":
		return fmt.Errorf("-protocol: %q is not ws, whep or hls", o.Protocol)
	case o.Protocol == "hls" && o.Codec != "h264":
		return errors.New("-protocol hls needs -codec h264: HLS cannot carry VP8")
	case o.Publish != "ws" && o.Publish != "whip":
		return fmt.Errorf("-publish: %q is not ws or whip", o.Publish)
	case o.Codec != "h264" && o.Codec != "vp8":
		return fmt.Errorf("-codec: %q is not h264 or vp8", o.Codec)
	case o.Viewers < 0:
		return errors.New("-viewers must not be negative")
	case o.Rate < 0:
		return errors.New("-rate must not be negative")
	case o.Bitrate < 10_000:
		return errors.New("-bitrate must be at least 10k")
	case o.FPS < 1 || o.FPS > 240:
		return errors.New("-fps must be between 1 and 240")
	case o.KeyInt <= 0:
		return errors.New("-keyint must be positive")
	case o.Duration < 0:
		return errors.New("-duration must not be negative")
	case o.JoinTimeout <= 0:
		return errors.New("-join-timeout must be positive")
	case o.PID < 0:
		return errors.New("-pid must not be negative")
	case o.CapViewers < 0 || o.CapViewers > o.Viewers:
		return errors.New("-cap-viewers must be between 0 and -viewers")
	case o.SharedSockets < 0 || o.SampleViewers < 0:
		return errors.New("-shared-sockets and -sample-viewers must not be negative")
	case o.SampleViewers > 0 && o.SharedSockets == 0:
		return errors.New("-sample-viewers needs -shared-sockets")
	case o.SampleViewers > 0 && o.Simulcast:
		return errors.New("-sample-viewers does not combine with -simulcast: every viewer reads its layer from the payload")
	}
	for _, u := range o.ViewerURLs {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("-viewer-url: %q is not an http:// or https:// URL", u)
		}
	}
	return o.checkTokens()
}

// bitrate is a flag value in bit/s that takes k and M suffixes.
type bitrate int

func (b *bitrate) String() string { return strconv.Itoa(int(*b)) }

func (b *bitrate) Set(s string) error {
	mult := 1.0
	num := strings.TrimSpace(s)
	switch {
	case strings.HasSuffix(num, "k"), strings.HasSuffix(num, "K"):
		mult, num = 1e3, num[:len(num)-1]
	case strings.HasSuffix(num, "M"), strings.HasSuffix(num, "m"):
		mult, num = 1e6, num[:len(num)-1]
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a bitrate such as 2000k", s)
	}
	*b = bitrate(v * mult)
	return nil
}
