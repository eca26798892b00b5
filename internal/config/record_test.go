package config

import (
	"io"
	"strings"
	"testing"
)

func TestRecordFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil || c.RecordDir != "" || c.RecordHookURL != "" {
		t.Fatalf("default: %+v, %v; want recording off", c.Record, err)
	}
	c, err = Load([]string{"-record-hook-url", "http://127.0.0.1:9/up"}, env(map[string]string{"ONAIR_RECORD_DIR": "/var/rec"}), io.Discard)
	if err != nil || c.RecordDir != "/var/rec" || c.RecordHookURL != "http://127.0.0.1:9/up" {
		t.Fatalf("got %+v, %v", c.Record, err)
	}
	for _, args := range [][]string{
		{"-record-hook-url", "http://h/up"},
		{"-record-dir", "/d", "-record-hook-url", "ftp://h/up"},
		{"-record-dir", "/d", "-record-hook-url", "not a url"},
	} {
		if _, err := Load(args, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "-record-hook-url") {
			t.Errorf("%q: %v, want an error about -record-hook-url", args, err)
		}
	}
}
