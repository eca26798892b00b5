package sfu

import (
	"testing"

	"github.com/onair-live/onair/internal/media"
)

// The engine's totals include released endpoints, so they never go down.
func TestTrafficKeepsReleasedEndpoints(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pl, err := e.NewPipeline("room")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := pl.NewEndpoint(media.Publisher, "presenter:p", media.Events{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := pl.NewEndpoint(media.Subscriber, "viewer:v", media.Events{})
	if err != nil {
		t.Fatal(err)
	}
	p, v := pub.(*Endpoint), sub.(*Endpoint)
	p.packetsIn.Add(10)
	p.bytesIn.Add(1000)
	p.plis.Add(1)
	p.duplicates.Add(4)
	v.packetsOut.Add(7)
	v.bytesOut.Add(700)
	v.dropped.Add(3)
	v.nacks.Add(2)
	want := media.Traffic{PacketsIn: 10, PacketsOut: 7, BytesIn: 1000, BytesOut: 700, PacketsDropped: 3, NACKs: 2, PLIs: 1, PacketsDuplicate: 4}
	if got := e.Traffic(); got != want {
		t.Fatalf("live endpoints: %+v, want %+v", got, want)
	}
	sub.Release()
	if got := e.Traffic(); got != want {
		t.Fatalf("after a viewer left: %+v, want %+v", got, want)
	}
	pl.Release()
	if got := e.Traffic(); got != want {
		t.Fatalf("after the pipeline was released: %+v, want %+v", got, want)
	}
	if n := len(e.Pipelines()); n != 0 {
		t.Fatalf("%d pipelines left", n)
	}
}

// MeasureUsage measures this process.
func TestMeasureUsage(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	u, err := e.MeasureUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u.RSSBytes == 0 || u.MemoryPercent <= 0 {
		t.Errorf("usage %+v: want this process's memory", u)
	}
}
