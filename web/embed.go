// Package web holds the demo page, embedded in the binary so that it works
// on a machine with no internet. It has no logic of its own.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Static returns the demo page's files, rooted at static/.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("web: " + err.Error())
	}
	return sub
}
