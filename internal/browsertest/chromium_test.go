package browsertest_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// inCI reports whether missing prerequisites must fail rather than skip.
func inCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// unavailable skips the test, or fails it in CI, saying how to fix it.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("browser tests cannot run in CI (CI=true): %s", msg)
	}
	t.Skipf("browser test skipped: %s", msg)
}

// chromiumPath finds the browser: $ONAIR_CHROMIUM, else chromium on $PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ONAIR_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("ONAIR_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	unavailable(t, "Chromium not found. Install it with `sudo apt-get install chromium` (Debian/Ubuntu) "+
		"or point ONAIR_CHROMIUM at a Chromium or Chrome binary")
	return ""
}

// requireLoopbackOnly makes sure the test runs where the only network is
// loopback: Chromium gathers ICE candidates on every interface it sees, and
// these tests must send nothing beyond 127.0.0.1.
func requireLoopbackOnly(t *testing.T) {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if addrs, _ := ifc.Addrs(); len(addrs) > 0 {
			unavailable(t, "network interface %s is up; run the browser tests in a loopback-only network namespace: "+
				"go mod download && unshare -n sh -c 'ip link set lo up && exec go test ./internal/browsertest/' (as root)", ifc.Name)
		}
	}
}

// chromiumFlags are the command line of the browser under test, after
// chromedp's defaults (DefaultExecAllocatorOptions).
func chromiumFlags(execPath, userDataDir string, out *lockedBuffer) []chromedp.ExecAllocatorOption {
	return append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(userDataDir),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		// chromedp's flag of this name holds its own list, which this one
		// replaces: keep its entries and add ours. With mDNS on, Chromium
		// hides its host candidates behind .local names nobody resolves here.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("ignore-certificate-errors", true), // the server's self-signed certificate
		chromedp.WindowSize(1280, 860),
		chromedp.CombinedOutput(out),
	)
}

// browser is one Chromium process with a fresh profile.
type browser struct {
	t      *testing.T
	ctx    context.Context // the first tab; new tabs derive from it
	output *lockedBuffer
}

// newBrowser starts Chromium for t and stops it when t ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	requireLoopbackOnly(t)
	path := chromiumPath(t)
	out := &lockedBuffer{}
	dataDir, err := os.MkdirTemp("", "onair-chromium-profile-*")
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), chromiumFlags(path, dataDir, out)...)
	bctx, bcancel := chromedp.NewContext(actx)
	start := time.Now()
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		bcancel()
		acancel()
		_ = os.RemoveAll(dataDir)
		t.Fatalf("starting Chromium %s: %v\nbrowser output:\n%s", path, err, out.String())
	}
	t.Logf("Chromium started in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		bcancel()
		acancel()
		_ = os.RemoveAll(dataDir)
		if t.Failed() {
			t.Logf("browser output:\n%s", out.tail(4000))
		}
	})
	return &browser{t: t, ctx: bctx, output: out}
}

// lockedBuffer collects the browser's output from its process's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
