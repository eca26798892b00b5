package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of a process's CPU time and resident memory.
type procSample struct {
	at       time.Time
	cpuTicks uint64 // user + system, in clock ticks
	rssBytes uint64
}

// readProc reads /proc/<pid>/stat and /proc/<pid>/status; pid may be "self".
func readProc(pid string) (procSample, error) {
	now := time.Now()
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procSample{}, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'. utime and stime are fields 14 and 15 (1-based).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procSample{}, errors.New("unexpected /proc stat format")
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 13 {
		return procSample{}, errors.New("unexpected /proc stat format")
	}
	utime, err1 := strconv.ParseUint(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return procSample{}, errors.New("unexpected /proc stat format")
	}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return procSample{}, err
	}
	var rss uint64
	for line := range bytes.Lines(status) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) > 0 {
				kb, err := strconv.ParseUint(string(f[0]), 10, 64)
				if err != nil {
					return procSample{}, fmt.Errorf("VmRSS: %w", err)
				}
				rss = kb * 1024
			}
			break
		}
	}
	return procSample{at: now, cpuTicks: utime + stime, rssBytes: rss}, nil
}

// ProcUsage is a process's CPU and memory over a window.
type ProcUsage struct {
	PID string `json:"pid"`
	// CPUCorePercent is CPU time over wall time: 100 is one core busy.
	CPUCorePercent float64 `json:"cpuCorePercent"`
	// CPUMachinePercent is CPUCorePercent over the machine's cores.
	CPUMachinePercent float64 `json:"cpuMachinePercent"`
	Cores             int     `json:"cores"`
	RSSStartMB        float64 `json:"rssStartMB"`
	RSSEndMB          float64 `json:"rssEndMB"`
	RSSMaxMB          float64 `json:"rssMaxMB"`
	Seconds           float64 `json:"seconds"`
}

// procWatch follows one process over a window: the first and last readings
// give CPU, every reading may raise the peak of RSS.
type procWatch struct {
	pid         string
	first, last procSample
	maxRSS      uint64
	ok          bool
	err         error
}

func newProcWatch(pid string) *procWatch {
	w := &procWatch{pid: pid}
	w.sample()
	return w
}

// sample takes a reading; the first error is kept and reported.
func (w *procWatch) sample() {
	s, err := readProc(w.pid)
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return
	}
	if !w.ok {
		w.first, w.ok = s, true
	}
	w.last = s
	w.maxRSS = max(w.maxRSS, s.rssBytes)
}

// usage reports the window from the first to the last reading.
func (w *procWatch) usage() (ProcUsage, error) {
	if !w.ok {
		return ProcUsage{}, w.err
	}
	const mb = 1 << 20
	u := ProcUsage{PID: w.pid, Cores: runtime.NumCPU(),
		RSSStartMB: float64(w.first.rssBytes) / mb, RSSEndMB: float64(w.last.rssBytes) / mb,
		RSSMaxMB: float64(w.maxRSS) / mb, Seconds: w.last.at.Sub(w.first.at).Seconds()}
	if u.Seconds > 0 {
		cpu := float64(w.last.cpuTicks-w.first.cpuTicks) / clockTicks
		u.CPUCorePercent = 100 * cpu / u.Seconds
		u.CPUMachinePercent = u.CPUCorePercent / float64(u.Cores)
	}
	return u, w.err
}

// cpuTimes reads the machine's busy and total CPU time (/proc/stat), in
// clock ticks over all cores.
func cpuTimes() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, errors.New("unexpected /proc/stat format")
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0, errors.New("unexpected /proc/stat format")
		}
		if i >= 8 { // guest time is already counted in user time
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// machineWatch measures how busy the whole machine was over a window, so
// that a report shows when something besides the server and the tool ran.
type machineWatch struct {
	busy, total uint64
	ok          bool
}

func newMachineWatch() *machineWatch {
	busy, total, err := cpuTimes()
	return &machineWatch{busy: busy, total: total, ok: err == nil}
}

// busyPercent is the share of all cores' time spent busy since the start.
func (m *machineWatch) busyPercent() (float64, bool) {
	busy, total, err := cpuTimes()
	if err != nil || !m.ok || total <= m.total {
		return 0, false
	}
	return 100 * float64(busy-m.busy) / float64(total-m.total), true
}
