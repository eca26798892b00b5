package config_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/config"
)

// Every flag the server takes is described in docs/configuration.md, the
// page operators read, so a new flag cannot ship undocumented.
func TestEveryFlagIsDocumented(t *testing.T) {
	var usage bytes.Buffer
	if _, err := config.Load([]string{"-h"}, func(string) string { return "" }, &usage); err == nil {
		t.Fatal("config.Load(-h) returned no error")
	}
	flags := regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(usage.String(), -1)
	if len(flags) < 20 {
		t.Fatalf("found %d flags in the usage text, expected many more:\n%s", len(flags), usage.String())
	}
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flags {
		if !strings.Contains(string(doc), "`-"+f[1]+"`") {
			t.Errorf("flag -%s is not described in docs/configuration.md", f[1])
		}
	}
}
