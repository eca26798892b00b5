package loadtest

import (
	"runtime"

	"github.com/onair-live/onair/internal/sysstat"
)

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
	first, last sysstat.Process
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
	s, err := sysstat.ReadProcess(w.pid)
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
	w.maxRSS = max(w.maxRSS, s.RSSBytes)
}

// usage reports the window from the first to the last reading.
func (w *procWatch) usage() (ProcUsage, error) {
	if !w.ok {
		return ProcUsage{}, w.err
	}
	const mb = 1 << 20
	u := ProcUsage{PID: w.pid, Cores: runtime.NumCPU(),
		RSSStartMB: float64(w.first.RSSBytes) / mb, RSSEndMB: float64(w.last.RSSBytes) / mb,
		RSSMaxMB: float64(w.maxRSS) / mb, Seconds: w.last.At.Sub(w.first.At).Seconds()}
	if u.Seconds > 0 {
		u.CPUCorePercent = sysstat.CPUPercent(w.first, w.last)
		u.CPUMachinePercent = u.CPUCorePercent / float64(u.Cores)
	}
	return u, w.err
}

// machineWatch measures how busy the whole machine was over a window, so
// that a report shows when something besides the server and the tool ran.
type machineWatch struct {
	busy, total uint64
	ok          bool
}

func newMachineWatch() *machineWatch {
	busy, total, err := sysstat.MachineCPU()
	return &machineWatch{busy: busy, total: total, ok: err == nil}
}

// busyPercent is the share of all cores' time spent busy since the start.
func (m *machineWatch) busyPercent() (float64, bool) {
	busy, total, err := sysstat.MachineCPU()
	if err != nil || !m.ok || total <= m.total {
		return 0, false
	}
	return 100 * float64(busy-m.busy) / float64(total-m.total), true
}
