package sysstat

import (
	"os"
	"strconv"
	"testing"
	"time"
)

func TestReadProcess(t *testing.T) {
	for _, pid := range []string{"self", strconv.Itoa(os.Getpid())} {
		s, err := ReadProcess(pid)
		if err != nil {
			t.Fatal(err)
		}
		if s.RSSBytes == 0 {
			t.Errorf("%s: no RSS", pid)
		}
	}
	if _, err := ReadProcess("0"); err == nil {
		t.Error("pid 0 read")
	}
	busy, total, err := MachineCPU()
	if err != nil || total == 0 || busy > total {
		t.Errorf("MachineCPU = %d, %d, %v", busy, total, err)
	}
}

func TestSampler(t *testing.T) {
	s := NewSampler()
	for start := time.Now(); time.Since(start) < 600*time.Millisecond; {
	} // burn some CPU past the sampler's minimum interval
	got, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got.RSSBytes == 0 || got.MemoryPercent <= 0 || got.MemoryPercent > 100 {
		t.Errorf("memory %+v", got)
	}
	if got.CPUPercent <= 0 {
		t.Errorf("CPU %v%% while this test burnt CPU", got.CPUPercent)
	}
}
