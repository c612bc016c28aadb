package operator

import (
	"embed"
	"io/fs"
)

// OpenAPI is the OpenAPI 3 document of the operator API, served at
// /ops/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

//go:embed all:web/static
var static embed.FS

// Assets are the console page's files (index.html, app.js, style.css and
// the vendored charts library under vendor/), built into the binary.
func Assets() fs.FS {
	sub, err := fs.Sub(static, "web/static")
	if err != nil { // only for a malformed name, which "web/static" is not
		panic(err)
	}
	return sub
}

// vendorProbe is a file `make build` copies into the assets (the charts
// library); without it the page cannot work and /console says so.
const vendorProbe = "vendor/uPlot.iife.min.js"
