package redismode

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/store/redistest"
	"github.com/onair-live/onair/internal/testpeer"
)

// timeout bounds every wait: generous, for a loaded 2-core machine.
const timeout = 30 * time.Second

// The onair binary, built once for the package's multi-process tests.
var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "onair-redismode-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(binDir)
	os.Exit(code)
}

// onairBinary builds cmd/onair (once) and returns its path.
func onairBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binPath = filepath.Join(binDir, "onair")
		cmd := exec.Command(goBin, "build", "-o", binPath, "github.com/onair-live/onair/cmd/onair")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/onair: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is an onair process started by a test.
type proc struct {
	name   string
	URL    string // http://127.0.0.1:port/signal
	Server *testpeer.Server
	REST   *testpeer.Client

	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	log    strings.Builder
}

var listening = regexp.MustCompile(`msg="onair listening" addr=(\S+)`)

// startProc runs onair against Redis url with the test settings (loopback
// ICE, a free port, short owner TTL and reap interval) and extra flags, and
// waits until it listens. It is stopped (SIGTERM) when the test ends, and
// its log is shown if the test failed.
func startProc(t *testing.T, name, redisURL, prefix string, ownerTTL time.Duration, extra ...string) *proc {
	t.Helper()
	args := append([]string{"-redis", redisURL, "-redis-prefix", prefix, "-redis-owner-ttl", ownerTTL.String(),
		"-addr", "127.0.0.1:0", "-ice-loopback", "-ice-allowed-ips", "127.0.0.1", "-reap-interval", "300ms",
		"-log-level", "debug", "-shutdown-timeout", "10s"}, extra...)
	p := &proc{name: name, cmd: exec.Command(onairBinary(t), args...), exited: make(chan struct{})}
	for _, kv := range os.Environ() { // the test's flags only
		if !strings.HasPrefix(kv, "ONAIR_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	addr := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_ = r.Close()
	}()
	go func() {
		_ = p.cmd.Wait()
		<-scanned
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("log of onair %s:\n%s", p.name, p.Log())
		}
	})
	select {
	case a := <-addr:
		p.URL = "http://" + a + "/signal"
		p.REST = testpeer.NewClient(p.URL)
		p.Server = &testpeer.Server{URL: p.URL, WSURL: "ws://" + a + "/signal/ws", REST: p.REST}
		t.Cleanup(p.REST.CloseIdle)
	case <-p.exited:
		t.Fatalf("onair %s exited at start:\n%s", name, p.Log())
	case <-time.After(timeout):
		t.Fatalf("onair %s did not listen within %s:\n%s", name, timeout, p.Log())
	}
	return p
}

// Log is what the process has logged so far.
func (p *proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// kill9 kills the process as a crash would, and waits for it.
func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop shuts the process down gracefully and checks that it exited cleanly.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("onair %s exited with %d after SIGTERM", p.name, code)
		}
	case <-time.After(timeout):
		t.Errorf("onair %s did not exit within %s of SIGTERM", p.name, timeout)
		p.kill9()
	}
}

// count counts the lines of the log that contain every one of subs.
func (p *proc) count(subs ...string) int {
	n := 0
	for _, line := range strings.Split(p.Log(), "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// hookEvent is the part of a webhook body the tests check.
type hookEvent struct {
	Type   string `json:"type"`
	RoomID string `json:"roomId"`
	Viewer string `json:"viewer"`
	Reason string `json:"reason"`
}

// hookSink receives onair's webhooks.
type hookSink struct {
	URL    string
	mu     sync.Mutex
	events []hookEvent
}

func newHookSink(t *testing.T) *hookSink {
	h := &hookSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e hookEvent
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &e) == nil {
			h.mu.Lock()
			h.events = append(h.events, e)
			h.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/hook"
	return h
}

// flags are the flags that send webhooks to the sink.
func (h *hookSink) flags() []string {
	return []string{"-webhook-url", h.URL, "-webhook-secret", "test-secret"}
}

// has reports whether an event of that type, room and reason (and viewer,
// if not empty) arrived.
func (h *hookSink) has(typ, room, viewer, reason string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e.Type == typ && e.RoomID == room && e.Reason == reason && (viewer == "" || e.Viewer == viewer) {
			return true
		}
	}
	return false
}

func (h *hookSink) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, fmt.Sprintf("%s %s %s %s", e.Type, e.RoomID, e.Viewer, e.Reason))
	}
	return strings.Join(out, "; ")
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testpeer.WaitFor(t, timeout, what, cond)
}

// roomList is GET /room/list as "id:count" strings, or nil on error.
func roomList(c *testpeer.Client) []string {
	rs, err := c.Rooms()
	if err != nil {
		return nil
	}
	out := []string{}
	for _, r := range rs {
		out = append(out, r.RoomID+":"+r.Count)
	}
	sort.Strings(out)
	return out
}

// keys lists Redis's keys, sorted.
func keys(t *testing.T, srv *redistest.Server) []string {
	t.Helper()
	ks, err := srv.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ks)
	return ks
}

// want fails the test unless r has the status.
func want(t *testing.T, r testpeer.Response, status int) {
	t.Helper()
	if err := r.Want(status); err != nil {
		t.Fatal(err)
	}
}

// count counts the events of a type.
func (h *hookSink) count(typ string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}
