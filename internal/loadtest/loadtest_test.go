package loadtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/app"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/loadtest"
)

// startServer runs a real onair in this process on a loopback port and
// returns its URL and the app; it is shut down when the test ends.
func startServer(t *testing.T, configure ...func(*config.Config)) (string, *app.App) {
	t.Helper()
	cfg, err := config.Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range configure {
		f(&cfg)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.ICELoopback = true
	cfg.ICEAllowedIPs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + l.Addr().String(), a
}

// checkGoroutines fails the test if, once it has ended, goroutines started
// during it are still running (but for os/signal's, which lives as long as
// the process once Main has asked for signals).
func checkGoroutines(t *testing.T) {
	before := goroutines()
	t.Cleanup(func() {
		var left []string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			left = left[:0]
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok && !strings.Contains(stack, "os/signal.loop") &&
					!strings.Contains(stack, "checkGoroutines") {
					left = append(left, stack)
				}
			}
			if len(left) == 0 {
				return
			}
		}
		t.Errorf("%d goroutines left behind:\n%s", len(left), strings.Join(left, "\n\n"))
	})
}

// goroutines returns the stack of every goroutine, by goroutine id.
func goroutines() map[string]string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
		out[id] = g
	}
	return out
}

// runLoad runs `onair loadtest` with args and returns its summary and the
// viewer lines of its JSON output.
func runLoad(t *testing.T, args ...string) (map[string]any, []map[string]any, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	var stdout, stderr bytes.Buffer
	code := loadtest.Main(append(args, "-json", path), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var summary map[string]any
	var viewers []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("JSON line %q: %v", sc.Text(), err)
		}
		switch m["type"] {
		case "summary":
			summary = m
		case "viewer":
			viewers = append(viewers, m)
		}
	}
	if summary == nil {
		t.Fatalf("no summary line; stdout:\n%s", stdout.String())
	}
	return summary, viewers, stdout.String()
}

// num reads a number at a dotted path of a JSON object.
func num(t *testing.T, m map[string]any, path string) float64 {
	t.Helper()
	var v any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: not an object at %q", path, k)
		}
		v = obj[k]
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%s: %v is not a number", path, v)
	}
	return f
}

// TestRealRuns loads a real onair with 5 viewers over each protocol, each
// codec and each way of publishing, and checks what the report says.
func TestRealRuns(t *testing.T) {
	checkGoroutines(t)
	url, a := startServer(t)
	const viewers = 5
	cases := []struct{ protocol, publish, codec string }{
		{"ws", "ws", "h264"},
		{"ws", "whip", "vp8"},
		{"whep", "whip", "h264"},
		{"whep", "ws", "vp8"},
	}
	t.Run("group", func(t *testing.T) {
		for i, c := range cases {
			t.Run(c.protocol+"-"+c.publish+"-"+c.codec, func(t *testing.T) {
				t.Parallel()
				args := []string{"-url", url, "-protocol", c.protocol, "-publish", c.publish, "-codec", c.codec,
					"-viewers", strconv.Itoa(viewers), "-rate", "50", "-duration", "2s", "-progress", "0",
					"-bitrate", "1M", "-keyint", "1s", "-room", "test-" + strconv.Itoa(i)}
				if i == 0 {
					args = append(args, "-pid", strconv.Itoa(os.Getpid()))
				}
				s, lines, table := runLoad(t, args...)
				t.Logf("\n%s", table)
				if got := num(t, s, "viewersConnected"); got != viewers {
					t.Errorf("viewers connected: %v, want %d (failures: %v)", got, viewers, s["failures"])
				}
				if got := num(t, s, "viewersFailed") + num(t, s, "viewersLost"); got != 0 {
					t.Errorf("viewers failed or lost: %v", got)
				}
				if got := num(t, s, "viewersWithKeyframe"); got != viewers {
					t.Errorf("viewers that saw a keyframe: %v, want %d", got, viewers)
				}
				for _, k := range []string{"lossVideoPercent.max", "lossAudioPercent.max"} {
					if got := num(t, s, k); got > 1 {
						t.Errorf("%s = %v%%, want at most 1%%", k, got)
					}
				}
				for _, k := range []string{"forwardingVideoMs.n", "forwardingAudioMs.n", "firstKeyframeMs.n",
					"joinConnectedMs.n", "rxPacketsPerSecond", "tool.seconds"} {
					if num(t, s, k) <= 0 {
						t.Errorf("%s is not positive", k)
					}
				}
				if got := num(t, s, "leaveErrors"); got != 0 {
					t.Errorf("leave errors: %v", got)
				}
				if s["endError"] != nil {
					t.Errorf("ending the broadcast: %v", s["endError"])
				}
				if i == 0 && num(t, s, "server.seconds") <= 0 {
					t.Errorf("no server usage with -pid: %v", s["serverError"])
				}
				if i == 0 && (num(t, s, "floorUs") <= 0 || num(t, s, "serverCpuPerPacketUs") <= 0 ||
					math.Abs(num(t, s, "floorRatio")-num(t, s, "serverCpuPerPacketUs")/num(t, s, "floorUs")) > 1e-6) {
					t.Errorf("with -pid: floor %v µs, server %v µs per packet, ratio %v", s["floorUs"], s["serverCpuPerPacketUs"], s["floorRatio"])
				}
				if len(lines) != viewers {
					t.Errorf("%d viewer lines, want %d", len(lines), viewers)
				}
				for _, l := range lines {
					if l["state"] != "connected" || num(t, l, "videoReceived") == 0 || num(t, l, "audioReceived") == 0 {
						t.Errorf("viewer line %v", l)
					}
				}
			})
		}
	})
	rooms, err := a.Service().Rooms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 0 {
		t.Errorf("rooms left after the runs: %v", rooms)
	}
	if p := a.Service().Pipelines(); len(p) != 0 {
		t.Errorf("pipelines left after the runs: %d", len(p))
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-protocol", "rtmp"},
		{"-publish", "whep"},
		{"-codec", "av1"},
		{"-bitrate", "fast"},
		{"-fps", "0"},
		{"-viewer-url", "http://127.0.0.1:1,ftp://x"},
		{"extra"},
	} {
		var out, errOut bytes.Buffer
		if code := loadtest.Main(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit code %d, want 2", args, code)
		}
	}
	var out, errOut bytes.Buffer
	if code := loadtest.Main([]string{"-url", "http://127.0.0.1:1", "-viewers", "1", "-join-timeout", "2s"}, &out, &errOut); code != 1 {
		t.Errorf("no server: exit code %d, want 1; stderr %s", code, errOut.String())
	}
}

// TestSimulcastRun publishes three simulcast layers (2M, 500k, 125k) to a
// real onair, over WHIP, with two viewers of which one is capped at
// 800 kbit/s: the capped one ends below the top layer, the other on it, and
// the report says so.
func TestSimulcastRun(t *testing.T) {
	checkGoroutines(t)
	url, _ := startServer(t)
	s, lines, table := runLoad(t, "-url", url, "-publish", "whip", "-codec", "vp8", "-simulcast",
		"-viewers", "2", "-cap-viewers", "1", "-cap", "800k", "-rate", "50", "-duration", "8s", "-progress", "0")
	t.Logf("\n%s", table)
	if got := num(t, s, "viewersConnected"); got != 2 {
		t.Fatalf("viewers connected: %v (failures: %v)", got, s["failures"])
	}
	if got := num(t, s, "simulcast.uncapped.layers.h"); got != 1 {
		t.Errorf("uncapped viewers on the top layer: %v, want 1 (%v)", got, s["simulcast"])
	}
	capped := s["simulcast"].(map[string]any)["capped"].(map[string]any)
	if l := capped["layers"].(map[string]any); l["h"] != nil || num(t, capped, "viewers") != 1 {
		t.Errorf("the capped viewer: %v, want it off the top layer", capped)
	}
	if got := num(t, capped, "switches.max"); got < 1 {
		t.Errorf("the capped viewer never switched layer: %v", capped)
	}
	if !strings.Contains(table, "capped at 800 kbit/s") {
		t.Errorf("the table does not say the cap:\n%s", table)
	}
	for _, l := range lines {
		if l["layer"] == nil {
			t.Errorf("viewer line without its layer: %v", l)
		}
	}
}

// TestSharedSocketRun loads a real onair (with a socket per viewer) with
// viewers on two shared UDP sockets, two of six sampled (decrypting every packet), over each viewer
// protocol: all get media with no loss, the other four count it from the
// packet headers as much as the sampled ones do, and forwarding latency
// comes from the sampled ones.
func TestSharedSocketRun(t *testing.T) {
	checkGoroutines(t)
	// Viewers sharing a socket are told apart by the server's address
	// each is sent from: a port per viewer.
	url, a := startServer(t, func(c *config.Config) { c.SocketPerViewer = true })
	const viewers = 6
	for i, c := range []struct {
		protocol, codec string
		gro             bool
	}{{"ws", "h264", true}, {"whep", "vp8", true}, {"ws", "h264", false}} {
		t.Run(c.protocol+"/gro="+strconv.FormatBool(c.gro), func(t *testing.T) {
			s, lines, table := runLoad(t, "-url", url, "-protocol", c.protocol, "-codec", c.codec,
				"-viewers", strconv.Itoa(viewers), "-shared-sockets", "2", "-sample-viewers", "2",
				"-rate", "50", "-duration", "3s", "-progress", "0", "-bitrate", "1M", "-keyint", "1s",
				"-room", "shared-"+strconv.Itoa(i), "-udp-gro="+strconv.FormatBool(c.gro))
			t.Logf("\n%s", table)
			// On Linux the kernel takes UDP_GRO, and the server's GSO
			// messages (a frame each) then arrive whole and are split.
			if gro := s["udpGro"] == true; gro != (c.gro && runtime.GOOS == "linux") {
				t.Errorf("udpGro = %v with -udp-gro=%v on %s", s["udpGro"], c.gro, runtime.GOOS)
			} else if gro && num(t, s, "udpGroCoalesced") == 0 {
				t.Error("no read returned coalesced datagrams")
			}
			if got := num(t, s, "viewersConnected"); got != viewers {
				t.Fatalf("viewers connected: %v, want %d (failures: %v)", got, viewers, s["failures"])
			}
			if got := num(t, s, "viewersWithKeyframe"); got != viewers {
				t.Errorf("viewers that saw a keyframe: %v, want %d", got, viewers)
			}
			if got := num(t, s, "viewersHeaderOnly"); got != viewers-2 {
				t.Errorf("header-only viewers: %v, want %d", got, viewers-2)
			}
			for _, k := range []string{"lossVideoPercent.max", "lossAudioPercent.max"} {
				if got := num(t, s, k); got > 1 {
					t.Errorf("%s = %v%%, want at most 1%%", k, got)
				}
			}
			for _, k := range []string{"forwardingVideoMs.n", "forwardingAudioMs.n", "rxPacketsPerSecond"} {
				if num(t, s, k) <= 0 {
					t.Errorf("%s is not positive", k)
				}
			}
			// Every viewer was there for the whole window: a header-only one
			// counts about as many packets as a sampled one.
			most := 0.0
			for _, l := range lines {
				most = max(most, num(t, l, "videoReceived"))
			}
			for _, l := range lines {
				if l["state"] != "connected" || num(t, l, "videoReceived") < most/2 || num(t, l, "audioReceived") == 0 {
					t.Errorf("viewer line %v (most video packets: %v)", l, most)
				}
			}
		})
	}
	if p := a.Service().Pipelines(); len(p) != 0 {
		t.Errorf("pipelines left after the runs: %d", len(p))
	}
}

// Against a server that sends the viewers of each of its writers from one
// socket (the default), viewers that share a client socket cannot be told
// apart: the tool says so, and what to do, instead of reporting loss.
func TestSharedSocketsNeedAPortPerViewer(t *testing.T) {
	checkGoroutines(t)
	url, _ := startServer(t)
	s, _, _ := runLoad(t, "-url", url, "-viewers", "6", "-shared-sockets", "2", "-sample-viewers", "2",
		"-rate", "50", "-duration", "1s", "-progress", "0", "-bitrate", "500k", "-room", "shared-default",
		"-join-timeout", "5s")
	failures, _ := s["failures"].(map[string]any)
	found := false
	for msg := range failures {
		found = found || strings.Contains(msg, "-ice-socket-per-viewer")
	}
	if !found {
		t.Fatalf("failures %v: none says to run the server with -ice-socket-per-viewer", s["failures"])
	}
}
