// Package leakcheck fails a test that leaves goroutines behind. It counts
// only the goroutines the test started, directly or through goroutines it
// started: the test's goroutine carries a pprof label, and the runtime
// gives every new goroutine the labels of the one that starts it. So tests
// that use it may run in parallel (t.Parallel). Goroutines the runtime
// starts for timers (time.AfterFunc) carry no label and are not counted;
// nor are those started by goroutines that existed before the test.
// It is for tests only, and depends on nothing of onair's.
package leakcheck

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// settle is how long goroutines are given to end: pion and net/http end
// some of theirs a little after Close returns.
const settle = 10 * time.Second

const labelKey = "leakcheck"

// Check labels the goroutines the test starts from now on and, when the
// test ends (after the cleanups registered later, which run first), waits
// for every one of them to end, failing with their stacks if some do not.
// There is no slack: every goroutine a test starts must end.
//
// A test may call it more than once (a test that starts two servers): each
// call labels the goroutines started after it, and its cleanup waits for
// those only, so a server stopped by a later cleanup is not counted early.
func Check(t testing.TB) {
	t.Helper()
	mark := new(byte) // alive while the cleanup is: a unique label per call
	name := fmt.Sprintf("%s@%p", t.Name(), mark)
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(labelKey, name)))
	t.Cleanup(func() {
		pprof.SetGoroutineLabels(context.Background()) // this goroutine is the test's, not one it started
		if err := Wait(name); err != nil {
			t.Error(err)
		}
		_ = *mark
	})
}

// Wait waits for the goroutines labelled name (by Check) to end,
// and returns an error with their stacks if they do not within settle.
func Wait(name string) error {
	deadline := time.Now().Add(settle)
	for {
		n, stacks := started(name)
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("goroutine leak: %d goroutines started by %s are left; their stacks:\n%s", n, name, stacks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// started counts the goroutines labelled for the test named name, from the
// goroutine profile, and returns their stacks.
func started(name string) (int, string) {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return 0, ""
	}
	// The profile is records of "N @ pcs", "# labels: {...}", the stack,
	// and a blank line; labels are printed as "key":"value", quoted as %q.
	label := strconv.Quote(labelKey) + ":" + strconv.Quote(name)
	var (
		n      int
		stacks strings.Builder
		record []string
	)
	flush := func() {
		if len(record) > 1 && strings.HasPrefix(record[1], "# labels:") && strings.Contains(record[1], label) {
			count, _, _ := strings.Cut(record[0], " ")
			c, err := strconv.Atoi(count)
			if err == nil {
				n += c
				stacks.WriteString(strings.Join(record, "\n") + "\n\n")
			}
		}
		record = record[:0]
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		record = append(record, line)
	}
	flush()
	return n, stacks.String()
}
