package cache

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "defaults", mutate: func(*Config) {}},
		{name: "any path, no default TTL", mutate: func(c *Config) { c.Extensions, c.DefaultTTL = nil, 0 }},
		{name: "capacity", mutate: func(c *Config) { c.Capacity = 0 }, wantErr: "CACHE_CAPACITY 0"},
		{name: "max bytes", mutate: func(c *Config) { c.MaxBytes = 0 }, wantErr: "max bytes 0"},
		{name: "entry larger than the cache", mutate: func(c *Config) { c.MaxEntryBytes = c.MaxBytes + 1 }, wantErr: "max entry bytes"},
		{name: "too many bytes per entry", mutate: func(c *Config) { c.Capacity, c.MaxBytes = 1, 8<<30 }, wantErr: "4 GiB per entry"},
		{name: "negative TTL", mutate: func(c *Config) { c.DefaultTTL = -time.Second }, wantErr: "default TTL"},
		{name: "extension without dot", mutate: func(c *Config) { c.Extensions = []string{"png"} }, wantErr: `extension "png"`},
		{name: "extension with slash", mutate: func(c *Config) { c.Extensions = []string{"./x"} }, wantErr: `extension "./x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.wantErr)
			}
			if _, err := New(c, nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestPathAllowed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		method     string
		path       string
		extensions []string
		want       bool
	}{
		{name: "jpg", method: "GET", path: "/a/b.jpg", want: true},
		{name: "jpeg", method: "GET", path: "/b.jpeg", want: true},
		{name: "png", method: "GET", path: "/b.png", want: true},
		{name: "gif", method: "HEAD", path: "/b.gif", want: true},
		{name: "css", method: "GET", path: "/site.CSS", want: true},
		{name: "js", method: "GET", path: "/app.js", want: true},
		{name: "json is not js", method: "GET", path: "/data.json", want: false},
		{name: "bare extension name", method: "GET", path: "/js", want: false},
		{name: "root", method: "GET", path: "/", want: false},
		{name: "POST", method: "POST", path: "/a.png", want: false},
		{name: "lower-case method is another method", method: "get", path: "/a.png", want: false},
		{name: "empty list: any path", method: "GET", path: "/api", extensions: []string{}, want: true},
		{name: "custom list", method: "GET", path: "/doc.pdf", extensions: []string{".pdf"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			if tt.extensions != nil {
				c.Extensions = tt.extensions
			}
			if got := c.PathAllowed([]byte(tt.method), []byte(tt.path)); got != tt.want {
				t.Errorf("PathAllowed(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
			}
		})
	}
}
