// Package sysstat measures this process's CPU and memory use from the
// operating system (Linux /proc), for the media admin API and alerts. It keeps
// no global state: a Sampler belongs to whoever created it.
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
	if cpu, err := processCPUSeconds(); err == nil {
		s.lastCPU = cpu
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
	now := time.Now()
	rss, total, err := memory()
	if err != nil {
		return Sample{}, err
	}
	out := Sample{At: now, RSSBytes: rss}
	if total > 0 {
		out.MemoryPercent = 100 * float64(rss) / float64(total)
	}
	out.CPUPercent = s.last.CPUPercent
	if wall := now.Sub(s.lastWall); wall >= minInterval {
		cpu, err := processCPUSeconds()
		if err != nil {
			return Sample{}, err
		}
		out.CPUPercent = 100 * (cpu - s.lastCPU) / wall.Seconds() / float64(runtime.NumCPU())
		s.lastCPU, s.lastWall = cpu, now
	}
	s.last = out
	return out, nil
}

// processCPUSeconds is user+system CPU time of this process (/proc/self/stat).
func processCPUSeconds() (float64, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields resume after its closing paren.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("sysstat: unexpected /proc/self/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')' field 0 is state (field 3 of stat); utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("sysstat: short /proc/self/stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("sysstat: bad cpu times in /proc/self/stat")
	}
	return float64(ut+st) / clockTicks, nil
}

// memory returns the resident set size and the machine's total memory.
func memory() (rss, total uint64, err error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0, errors.New("sysstat: short /proc/self/statm")
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	rss = pages * uint64(os.Getpagesize())
	mf, err := os.Open("/proc/meminfo")
	if err != nil {
		return rss, 0, err
	}
	defer mf.Close()
	sc := bufio.NewScanner(mf)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return rss, 0, err
			}
			return rss, kb * 1024, nil
		}
	}
	return rss, 0, errors.New("sysstat: no MemTotal in /proc/meminfo")
}
