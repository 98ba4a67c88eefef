package gateway

import (
	"embed"
	"io/fs"
)

// assets are the dashboard's files, embedded so the binary serves them
// with nothing loaded from the internet.
//
//go:embed assets/index.html assets/dashboard.css assets/dashboard.js assets/favicon.svg
var assets embed.FS

func assetFS() (fs.FS, error) {
	return fs.Sub(assets, "assets")
}
