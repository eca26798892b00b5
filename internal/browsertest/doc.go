// Package browsertest holds onair's end-to-end tests in a real browser: a
// headless Chromium (Debian's chromium package, never a downloaded one),
// driven over the DevTools protocol with chromedp, loads the demo page from a
// real onair over HTTPS and goes live and watches with Chromium's fake camera
// and microphone. Everything is in the _test files; the package has no code
// that anything else may import.
//
// The tests need Chromium (ONAIR_CHROMIUM, else chromium on $PATH) and a
// network namespace whose only interface is loopback, because Chromium offers
// every local address for ICE:
//
//	go mod download
//	unshare -n sh -c 'ip link set lo up && exec go test -race ./internal/browsertest/'
//
// The test of a throttled viewer also needs tc (iproute2) and root in that
// namespace: it shapes one viewer's port on lo (docs/simulcast.md).
//
// Without Chromium or outside such a namespace they skip, saying what to do;
// with CI=true they fail instead, so CI never passes them silently.
package browsertest
