// Package sysstat measures processes' CPU and memory use and the machine's
// CPU use from the operating system (Linux /proc), for the media admin API,
// alerts and the load tool. It keeps no global state: a Sampler belongs to
// whoever created it.
package sysstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// Sample is one reading.
type Sample struct {
	CPUPercent    float64 // share of the whole machine (all cores), 0-100
	MemoryPercent float64 // resident set size over total memory, 0-100
	RSSBytes      uint64
	At            time.Time
}

// Sampler computes CPU use as the difference between two readings.
type Sampler struct {
	mu       sync.Mutex
	lastCPU  float64 // process CPU seconds at lastWall
	lastWall time.Time
	last     Sample
}

// NewSampler takes a first reading so that the next Read has a baseline.
func NewSampler() *Sampler {
	s := &Sampler{}
	if p, err := ReadProcess("self"); err == nil {
		s.lastCPU = p.CPUSeconds
	}
	s.lastWall = time.Now()
	return s
}

// Read returns CPU use since the previous Read (or since NewSampler) and the
// current memory use. Calls closer together than minInterval return the
// previous CPU figure, so that a burst of requests does not measure noise.
func (s *Sampler) Read() (Sample, error) {
	const minInterval = 500 * time.Millisecond
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := ReadProcess("self")
	if err != nil {
		return Sample{}, err
	}
	total, err := memoryTotal()
	if err != nil {
		return Sample{}, err
	}
	now := p.At
	out := Sample{At: now, RSSBytes: p.RSSBytes}
	if total > 0 {
		out.MemoryPercent = 100 * float64(p.RSSBytes) / float64(total)
	}
	out.CPUPercent = s.last.CPUPercent
	if wall := now.Sub(s.lastWall); wall >= minInterval {
		out.CPUPercent = 100 * (p.CPUSeconds - s.lastCPU) / wall.Seconds() / float64(runtime.NumCPU())
		s.lastCPU, s.lastWall = p.CPUSeconds, now
	}
	s.last = out
	return out, nil
}

// Process is one reading of a process's CPU time and resident memory.
type Process struct {
	At         time.Time
	CPUSeconds float64 // user + system time since the process started
	RSSBytes   uint64
}

// ReadProcess reads /proc/<pid>/stat and /proc/<pid>/status; pid may be "self".
func ReadProcess(pid string) (Process, error) {
	now := time.Now()
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return Process{}, err
	}
	// The command name may hold spaces and parentheses: fields resume after
	// the last ')'. After it, field 0 is state (field 3 of stat); utime and
	// stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return Process{}, fmt.Errorf("sysstat: unexpected /proc/%s/stat", pid)
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return Process{}, fmt.Errorf("sysstat: short /proc/%s/stat", pid)
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return Process{}, fmt.Errorf("sysstat: bad cpu times in /proc/%s/stat", pid)
	}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return Process{}, err
	}
	var rss uint64
	for line := range bytes.Lines(status) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			if f := bytes.Fields(v); len(f) > 0 {
				kb, err := strconv.ParseUint(string(f[0]), 10, 64)
				if err != nil {
					return Process{}, fmt.Errorf("sysstat: VmRSS: %w", err)
				}
				rss = kb * 1024
			}
			break
		}
	}
	return Process{At: now, CPUSeconds: float64(ut+st) / clockTicks, RSSBytes: rss}, nil
}

// CPUPercent is the CPU time a process used between two readings over the
// wall time between them: 100 is one core busy. It is 0 without a first
// reading.
func CPUPercent(a, b Process) float64 {
	secs := b.At.Sub(a.At).Seconds()
	if secs <= 0 || a.At.IsZero() {
		return 0
	}
	return 100 * (b.CPUSeconds - a.CPUSeconds) / secs
}

// MachineCPU reads the machine's busy and total CPU time (/proc/stat), in
// clock ticks over all cores.
func MachineCPU() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, errors.New("sysstat: unexpected /proc/stat")
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0, errors.New("sysstat: unexpected /proc/stat")
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

// memoryTotal returns the machine's total memory (/proc/meminfo).
func memoryTotal() (uint64, error) {
	mf, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer mf.Close()
	sc := bufio.NewScanner(mf)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("sysstat: no MemTotal in /proc/meminfo")
}
